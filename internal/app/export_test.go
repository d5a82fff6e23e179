package app

// RedisOptions exposes redisOptions to the tests of package app_test.
var RedisOptions = redisOptions

// NewOutcomeClient exposes newOutcomeClient.
var NewOutcomeClient = newOutcomeClient

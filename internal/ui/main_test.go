package ui_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/herald-dev/herald/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testkit.LeakOptions()...) }

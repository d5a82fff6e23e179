// Command tracepicture draws one trace from Jaeger's query API as an HTML
// timeline in the style of Jaeger's trace view, for the README's picture:
// the Jaeger built from its Go module serves the API but not the UI, whose
// assets are built with npm outside the module.
//
//	go run ./tracepicture -trace <id> -o trace.html
//	chromium --headless --screenshot=docs/tracing.png --window-size=1400,700 file://$PWD/trace.html
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

type trace struct {
	TraceID   string `json:"traceID"`
	Spans     []span `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type span struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	StartTime     int64  `json:"startTime"` // µs
	Duration      int64  `json:"duration"`  // µs
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s span) tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

func (s span) ref(kind string) string {
	for _, r := range s.References {
		if r.RefType == kind {
			return r.SpanID
		}
	}
	return ""
}

// row is one span as drawn.
type row struct {
	Service, Name, Kind, Detail, Link string
	Depth                             int
	Left, Width, Right                float64 // percent of the timeline
	Duration                          string
	Color                             string
	Error                             bool
}

type page struct {
	TraceID  string
	Summary  string
	Rows     []row
	Ticks    []tick
	Services []legend
}

type tick struct {
	Left  float64
	Label string
}

type legend struct{ Name, Color string }

var palette = []string{"#17b8be", "#f8dcaa", "#8fd4f5", "#ffb6c1", "#a6d96a", "#d5b9f0"}

func main() {
	jaeger := flag.String("jaeger", "http://127.0.0.1:16686", "Jaeger query URL")
	id := flag.String("trace", "", "trace id")
	out := flag.String("o", "trace.html", "output file")
	flag.Parse()
	if *id == "" {
		log.Fatal("-trace is required")
	}
	tr, err := fetch(*jaeger, *id)
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	if err := tmpl.Execute(f, layout(tr)); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func fetch(jaeger, id string) (*trace, error) {
	resp, err := http.Get(strings.TrimRight(jaeger, "/") + "/api/traces/" + id)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger answered %s", resp.Status)
	}
	var body struct {
		Data []trace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if len(body.Data) != 1 {
		return nil, fmt.Errorf("jaeger returned %d traces", len(body.Data))
	}
	return &body.Data[0], nil
}

func layout(tr *trace) page {
	byID := map[string]span{}
	children := map[string][]span{}
	var roots []span
	start, end := int64(1<<62), int64(0)
	for _, s := range tr.Spans {
		byID[s.SpanID] = s
		start = min(start, s.StartTime)
		end = max(end, s.StartTime+s.Duration)
	}
	for _, s := range tr.Spans {
		if p := s.ref("CHILD_OF"); p != "" && byID[p].SpanID != "" {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	colors := map[string]string{}
	var services []legend
	service := func(s span) string {
		name := tr.Processes[s.ProcessID].ServiceName
		if _, ok := colors[name]; !ok {
			colors[name] = palette[len(colors)%len(palette)]
			services = append(services, legend{name, colors[name]})
		}
		return name
	}
	total := float64(max(end-start, 1))
	p := page{TraceID: tr.TraceID}
	names := map[string]string{} // span id → short name for links
	var walk func(s span, depth int)
	walk = func(s span, depth int) {
		svc := service(s)
		r := row{
			Service: svc, Name: s.OperationName, Kind: s.tag("span.kind"), Depth: depth,
			Left: 100 * float64(s.StartTime-start) / total, Width: max(100*float64(s.Duration)/total, 0.25),
			Duration: fmtDuration(s.Duration), Color: colors[svc],
			Error: s.tag("otel.status_code") == "ERROR" || s.tag("error") == "true",
		}
		var details []string
		if a := s.tag("herald.attempt"); a != "" {
			details = append(details, "attempt "+a)
			names[s.SpanID] = "attempt " + a
		}
		if t := s.tag("herald.retry.tier"); t != "" {
			details = append(details, "tier "+t)
		}
		if o := s.tag("herald.outcome"); o != "" {
			details = append(details, o)
		}
		if c := s.tag("http.response.status_code"); c != "" {
			details = append(details, "HTTP "+c)
		}
		r.Right = r.Left + r.Width
		r.Detail = strings.Join(details, " · ")
		if l := s.ref("FOLLOWS_FROM"); l != "" {
			r.Link = l
		}
		p.Rows = append(p.Rows, r)
		kids := children[s.SpanID]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime < kids[j].StartTime })
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].StartTime < roots[j].StartTime })
	for _, r := range roots {
		walk(r, 0)
	}
	for i := range p.Rows {
		if l := p.Rows[i].Link; l != "" {
			p.Rows[i].Link = "↪ follows " + firstNonEmpty(names[l], l)
		}
	}
	for i := 0; i <= 4; i++ {
		p.Ticks = append(p.Ticks, tick{Left: float64(i) * 25, Label: fmtDuration(int64(total) * int64(i) / 4)})
	}
	p.Services = services
	p.Summary = fmt.Sprintf("%d spans · %d services · %s", len(tr.Spans), len(services), fmtDuration(end-start))
	return p
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func fmtDuration(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", us)
}

var tmpl = template.Must(template.New("trace").Funcs(template.FuncMap{
	"indent": func(d int) string { return fmt.Sprintf("%dpx", 12+d*18) },
	"pct":    func(f float64) string { return fmt.Sprintf("%.3f%%", f) },
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Trace {{.TraceID}}</title>
<style>
body { font: 13px/1.35 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #222; background: #fff; }
header { background: #1e1e1e; color: #eee; padding: 12px 16px; }
header h1 { font-size: 16px; margin: 0 0 4px; font-weight: 600; }
header .meta { color: #aaa; font-size: 12px; }
.legend { padding: 8px 16px; border-bottom: 1px solid #ddd; }
.legend span { display: inline-block; margin-right: 18px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.grid { display: grid; grid-template-columns: 560px 1fr; }
.head { background: #f6f6f6; border-bottom: 1px solid #ddd; height: 26px; position: relative; font-size: 11px; color: #666; }
.track { position: absolute; left: 8px; right: 120px; top: 0; bottom: 0; }
.head.left { padding: 5px 12px; box-sizing: border-box; }
.tick { position: absolute; top: 6px; transform: translateX(-50%); white-space: nowrap; }
.tick:first-child { transform: none; } .tick:last-child { transform: translateX(-100%); }
.name, .bar { height: 42px; border-bottom: 1px solid #eee; box-sizing: border-box; }
.name { padding-top: 5px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; border-left: 4px solid; }
.name .svc { font-weight: 600; } .name .op { color: #444; }
.name .detail { display: block; font-size: 11px; color: #777; }
.name .err { color: #d32f2f; font-weight: 700; margin-right: 4px; }
.bar { position: relative; border-left: 1px solid #ddd; overflow: hidden; }
.bar .b { position: absolute; top: 13px; height: 14px; border-radius: 2px; }
.bar .b.err { box-shadow: inset 0 0 0 2px #d32f2f; }
.bar .d { position: absolute; top: 13px; font-size: 11px; color: #555; white-space: nowrap; padding-left: 6px; }
.name .l { color: #7b1fa2; }
</style></head><body>
<header><h1>One webhook delivery, producer to subscriber</h1>
<div class="meta">Trace {{.TraceID}} · {{.Summary}}</div></header>
<div class="legend">{{range .Services}}<span><i style="background:{{.Color}}"></i>{{.Name}}</span>{{end}}</div>
<div class="grid">
<div class="head left">Service &amp; operation</div>
<div class="head"><div class="track">{{range .Ticks}}<span class="tick" style="left:{{pct .Left}}">{{.Label}}</span>{{end}}</div></div>
{{range .Rows}}
<div class="name" style="padding-left:{{indent .Depth}};border-left-color:{{.Color}}">{{if .Error}}<span class="err">!</span>{{end}}<span class="svc">{{.Service}}</span> <span class="op">{{.Name}}</span> <span class="detail">{{.Kind}}{{if .Detail}} · {{.Detail}}{{end}}{{if .Link}} · <span class="l">{{.Link}}</span>{{end}}</span></div>
<div class="bar"><div class="track"><div class="b{{if .Error}} err{{end}}" style="left:{{pct .Left}};width:{{pct .Width}};background:{{.Color}}"></div><div class="d" style="left:{{pct .Right}}">{{.Duration}}</div></div></div>
{{end}}
</div></body></html>
`))

package redact

import "testing"

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://user:secret@host:5432/db?sslmode=disable":       "postgres://user:***@host:5432/db?sslmode=disable",
		"postgresql://user@host/db":                                 "postgresql://user@host/db",
		"postgres://host/db?user=u&password=secret&sslmode=require": "postgres://host/db?password=***&sslmode=require&user=u",
		"postgres://u:p%40ss@h/db":                                  "postgres://u:***@h/db",
		"postgres://u:bad%zz@h/db":                                  "postgres://u:***@h/db",
		"host=h user=u password=secret dbname=d":                    "host=h user=u password=*** dbname=d",
		"host=h password='sec ret' dbname=d":                        "host=h password=*** dbname=d",
		"sqlite:./x.db":                                             "sqlite:./x.db",
		"memory":                                                    "memory",
		"memory?history=10":                                         "memory?history=10",
		"amqp://xcomponent:xcomponent123@rabbit:5672/vh":            "amqp://xcomponent:***@rabbit:5672/vh",
		"amqp://guest:guest@localhost:5672":                         "amqp://guest:***@localhost:5672",
		"https://u:pa55@hooks.example/h?code=s3cret&key=k3y#frag":   "https://u:***@hooks.example/h?code=***&key=***",
		"http://hooks.example/h":                                    "http://hooks.example/h",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

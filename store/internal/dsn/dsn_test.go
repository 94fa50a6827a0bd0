package dsn

import "testing"

func TestRedact(t *testing.T) {
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
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xcomponent/xcomponent/component"
)

// repoRoot is the root of this checkout, two levels up from the package under test.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var skeletonFiles = []string{".gitignore", "README.md", "component.yaml", "go.mod", "main.go", "main_test.go"}

func TestInitWritesTheSkeleton(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "My Shop")
	code, out, errOut := runCLI(t, "init", dir, "--replace", filepath.Join("..", "..")) // made absolute
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, f := range skeletonFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
		if !strings.Contains(out, "  "+f+"\n") {
			t.Errorf("output does not list %s:\n%s", f, out)
		}
	}
	if !strings.Contains(out, "go mod tidy") {
		t.Errorf("output lacks the next steps:\n%s", out)
	}
	if errOut != "" {
		t.Errorf("stderr: %s", errOut)
	}
	gomod := readFile(t, filepath.Join(dir, "go.mod"))
	for _, want := range []string{
		"module example.com/my-shop\n",
		"\nrequire github.com/xcomponent/xcomponent v0.0.0-00010101000000-000000000000\n",
		"\nreplace github.com/xcomponent/xcomponent => " + repoRoot(t) + "\n",
	} {
		if !strings.Contains(gomod, want) {
			t.Errorf("go.mod lacks %q:\n%s", want, gomod)
		}
	}
	if gi := readFile(t, filepath.Join(dir, ".gitignore")); !strings.Contains(gi, "/my-shop\n") || !strings.Contains(gi, "*.db\n") {
		t.Errorf(".gitignore:\n%s", gi)
	}
}

// Generated projects use the go directive of this module: they cannot go below it.
func TestInitGoVersionFollowsGoMod(t *testing.T) {
	var goLine string
	for _, l := range strings.Split(readFile(t, filepath.Join(repoRoot(t), "go.mod")), "\n") {
		if strings.HasPrefix(l, "go ") {
			goLine = strings.TrimSpace(strings.TrimPrefix(l, "go "))
		}
	}
	if goLine != skeletonGoVersion {
		t.Fatalf("go.mod says go %s, skeletonGoVersion is %s: update init.go", goLine, skeletonGoVersion)
	}
}

func TestInitRefusesANonEmptyDirUnlessForced(t *testing.T) {
	dir := t.TempDir()
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "init", dir, "--replace", repoRoot(t))
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "is not empty") || !strings.Contains(errOut, "--force") {
		t.Fatalf("stderr: %s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		t.Fatal("go.mod written into a non-empty dir")
	}

	// --force writes the skeleton, overwriting its own files and leaving the others alone.
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "init", "--force", dir, "--replace", repoRoot(t)); code != 0 {
		t.Fatalf("--force: exit %d\n%s%s", code, out, errOut)
	}
	if got := readFile(t, notes); got != "mine" {
		t.Fatalf("notes.txt = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "main.go")); !strings.Contains(got, "package main") {
		t.Fatalf("main.go not overwritten: %q", got)
	}
}

func TestInitRefusesAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "init", "--force", file, "--replace", repoRoot(t))
	if code != 1 || !strings.Contains(errOut, "not a directory") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

func TestInitUsageErrors(t *testing.T) {
	root := repoRoot(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "1Orders"}, "--name"},
		{[]string{"--name", "Or ders"}, "--name"},
		{[]string{"--name", "-Orders"}, "--name"},
		{[]string{"--name", "Orders.v2"}, "--name"},
		{[]string{"--name", ""}, "--name"},
		{[]string{"--module", "example.com/a b"}, "--module"},
		{[]string{"--module", "example.com//x"}, "--module"},
		{[]string{"--replace", t.TempDir()}, "--replace"},
		{[]string{"--replace", filepath.Join(root, "cmd")}, "--replace"},
	} {
		dir := filepath.Join(t.TempDir(), "p")
		args := append([]string{"init", dir, "--replace", root}, tc.args...)
		code, _, errOut := runCLI(t, args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 2 naming %s: %s", tc.args, code, tc.want, errOut)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%v: %s created", tc.args, dir)
		}
	}
	if code, _, _ := runCLI(t, "init"); code != 2 {
		t.Errorf("no DIR: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "init", "a", "b"); code != 2 {
		t.Errorf("two DIRs: exit %d, want 2", code)
	}
}

func TestInitComponentLoadsWithoutWarnings(t *testing.T) {
	for _, name := range []string{"Orders", "Billing_2-eu"} {
		dir := t.TempDir()
		if code, out, errOut := runCLI(t, "init", dir, "--name", name, "--replace", repoRoot(t)); code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		c, err := component.LoadFile(filepath.Join(dir, "component.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Name != name {
			t.Errorf("component name %q, want %q", c.Name, name)
		}
		for _, w := range append(c.Warnings, component.ValidateSet([]*component.Component{c})...) {
			t.Errorf("warning: %s", w.String())
		}
		m := c.Machine("Order")
		if m == nil || len(m.ContextSchema) == 0 {
			t.Fatalf("no Order machine with a contextSchema")
		}
		var guard, timeout, hook bool
		for _, tr := range m.Transitions {
			guard = guard || len(tr.Guards) > 0
			timeout = timeout || tr.Type == component.Timeout
			hook = hook || tr.TriggeredMethod == "priceOrder"
		}
		if !guard || !timeout || !hook {
			t.Errorf("guard %v, timeout %v, triggeredMethod %v: want all", guard, timeout, hook)
		}
		if code, out, _ := runCLI(t, "validate", "--strict", filepath.Join(dir, "component.yaml")); code != 0 {
			t.Errorf("validate --strict: exit %d\n%s", code, out)
		}
	}
}

// This test binary is a development build run from the checkout: without --replace, init
// finds the checkout; an empty --replace turns that off and warns that go.mod cannot resolve.
func TestInitReplaceDefaults(t *testing.T) {
	root := repoRoot(t)
	if runtimeVersion() != "" {
		t.Skipf("built with a release version %s", runtimeVersion())
	}
	if sourceCheckout() == "" {
		t.Skip("built with -trimpath: the checkout cannot be found")
	}
	if got := sourceCheckout(); got != root {
		t.Fatalf("sourceCheckout() = %s, want %s", got, root)
	}
	dir := t.TempDir()
	if code, out, errOut := runCLI(t, "init", dir); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if gomod := readFile(t, filepath.Join(dir, "go.mod")); !strings.Contains(gomod, "=> "+root+"\n") {
		t.Fatalf("go.mod does not replace with the checkout:\n%s", gomod)
	}

	dir = t.TempDir()
	code, out, errOut := runCLI(t, "init", dir, "--replace", "")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if gomod := readFile(t, filepath.Join(dir, "go.mod")); strings.Contains(gomod, "replace") {
		t.Fatalf("--replace '': go.mod has a replace directive:\n%s", gomod)
	}
	if !strings.Contains(errOut, "level=WARN") || !strings.Contains(errOut, "--replace") {
		t.Fatalf("no warning about the unresolvable version: %q", errOut)
	}
}

func TestModQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/work/main":     "/work/main",
		"/tmp/My Shop":   `"/tmp/My Shop"`,
		`C:\src\xc`:      `C:\src\xc`,
		"/a//b":          `"/a//b"`,
		`/odd"quote`:     `"/odd\"quote"`,
		"../xcomponent":  "../xcomponent",
		"/x/(parens)/yz": `"/x/(parens)/yz"`,
	} {
		if got := modQuote(in); got != want {
			t.Errorf("modQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// goEnv is the environment of the go commands run on a generated project: the module cache
// and proxy of this machine, no workspace, go.mod updates allowed.
func goEnv() []string {
	var env []string
	flags := "-mod=mod"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GOFLAGS="):
			if v := strings.TrimPrefix(kv, "GOFLAGS="); v != "" {
				flags = v + " " + flags
			}
		case strings.HasPrefix(kv, "GOWORK="):
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GOFLAGS="+flags, "GOWORK=off")
}

// The acceptance test: init, then tidy, vet, build and test the generated project
// with the go command, then run its binary twice on one SQLite file.
func TestInitProjectBuildsTestsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command on a generated project")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	dir := filepath.Join(t.TempDir(), "shop")
	if code, out, errOut := runCLI(t, "init", dir, "--module", "example.com/acme/shop", "--replace", repoRoot(t)); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	// A bound only against a hung go command, under the 10 min test timeout: with CI's other
	// packages building and testing beside it, the four steps took over 3 min.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	bin := t.TempDir()
	for _, args := range [][]string{
		{"mod", "tidy"},
		{"vet", "./..."},
		{"build", "-o", bin + string(filepath.Separator), "./..."},
		{"test", "-count=1", "./..."},
	} {
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = dir
		cmd.Env = goEnv()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("go %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}

	db := "sqlite:" + filepath.Join(t.TempDir(), "shop.db")
	stdout, stderr := runUntilReady(ctx, t, filepath.Join(bin, "shop"), "-store", db, "-addr", "127.0.0.1:0")
	for _, want := range []string{
		"Created → AwaitingPayment → Paid → Shipped",
		"PLACE refused: triggeredMethod hook priceOrder vetoed the transition",
		"then PAYMENT_TIMEOUT → Expired unless paid",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "shutting down") {
		t.Errorf("no graceful shutdown in the logs:\n%s", stderr)
	}

	// Started again on the same file, it restores the two orders left active by the demo.
	_, stderr = runUntilReady(ctx, t, filepath.Join(bin, "shop"), "-store", db, "-demo=false", "-addr", "127.0.0.1:0")
	if !strings.Contains(stderr, "instances=2") {
		t.Errorf("restart did not restore the 2 active orders:\n%s", stderr)
	}
}

// runUntilReady runs the generated binary until it says it is running, stops it with
// SIGTERM and expects a clean exit; it returns what it printed.
func runUntilReady(ctx context.Context, t *testing.T, bin string, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out strings.Builder
	timeout := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("%s exited before it was ready\nstdout:\n%s\nstderr:\n%s", bin, out.String(), errBuf.String())
			}
			out.WriteString(l + "\n")
			if strings.HasPrefix(l, "running") {
				break wait
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("%s not ready after 30s\nstdout:\n%s\nstderr:\n%s", bin, out.String(), errBuf.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		out.WriteString(l + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errBuf.String())
	}
	return out.String(), errBuf.String()
}

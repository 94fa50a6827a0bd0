package main

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

// skeletonFS holds the templates of `xcomponent init`. They end in .tmpl so that Go tooling
// ignores them; they use [[ ]] as delimiters, so that Go composite literals and YAML flow
// mappings need no escaping.
//
// skeleton/distributed holds the files of `init --distributed` that differ (a runtime of the
// distributed mode instead of a single process).
//
//go:embed skeleton/*.tmpl skeleton/distributed/*.tmpl
var skeletonFS embed.FS

const (
	// runtimeModule is the module path of this runtime, required by generated projects.
	runtimeModule = "github.com/xcomponent/xcomponent"
	// skeletonGoVersion is the go directive of generated projects: the one of this module's
	// go.mod, which a generated project cannot go below (a test keeps the two equal).
	skeletonGoVersion = "1.26.8"
	// placeholderVersion is required when the runtime comes from a replace directive and the
	// binary has no release version; the go command uses the same placeholder.
	placeholderVersion = "v0.0.0-00010101000000-000000000000"
	// defaultComponentName is the component name when --name is not given.
	defaultComponentName = "Orders"
)

var (
	componentNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	// semverRE accepts release versions and pseudo-versions, not +dirty or (devel) builds.
	semverRE      = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)
	moduleElemRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	notModuleChar = regexp.MustCompile(`[^a-z0-9._~-]+`)
)

// skeletonData is what the templates see.
type skeletonData struct {
	Module    string // module path of the generated project
	Binary    string // name of its binary: the last element of Module
	Name      string // component name
	GoVersion string // go directive
	Runtime   string // runtimeModule
	Version   string // required version of the runtime
	Replace   string // local checkout the runtime is replaced with; empty for none
}

func newInitCmd(g *globals) *cobra.Command {
	var modPath, name, replace string
	var force, dist bool
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a project skeleton: a component, a Go main with a hook, a test",
		Long: "Writes into DIR (created if needed, refused if not empty unless --force) a Go project\n" +
			"that embeds the runtime: component.yaml (an order workflow with a guard, a timeout, a\n" +
			"triggeredMethod hook and a contextSchema), main.go (the hook in Go; runs the engine on\n" +
			"a durable store), main_test.go (the workflow tested on a virtual clock), go.mod,\n" +
			"README.md and .gitignore. Then: cd DIR && go mod tidy && go test ./... && go run .\n\n" +
			"go.mod requires " + runtimeModule + " at this binary's version. A development build\n" +
			"has none: --replace PATH then points go.mod at a checkout of the runtime (a replace\n" +
			"directive). Without --replace, a development build run from a checkout (go run\n" +
			"./cmd/xcomponent, or go build without -trimpath) uses that checkout; --replace ''\n" +
			"turns this off.\n\n" +
			"--distributed writes a distributed runtime instead (`xcomponent runtime` with your Go\n" +
			"hooks): main.go reads BROKER_URL, DATABASE_URL, RUNTIME_NAME, PORT … and runs the\n" +
			"component on RabbitMQ with the other runtimes of the component.",
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.ExactArgs(1)(cmd, args); err != nil {
				return &usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if !componentNameRE.MatchString(name) {
				return &usageError{fmt.Errorf("--name %q: a component name must match %s", name, componentNameRE)}
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if !cmd.Flags().Changed("module") {
				modPath = "example.com/" + moduleElem(filepath.Base(dir))
			}
			if err := checkModulePath(modPath); err != nil {
				return &usageError{fmt.Errorf("--module %q: %w", modPath, err)}
			}

			data := skeletonData{Module: modPath, Binary: path.Base(modPath), Name: name,
				GoVersion: skeletonGoVersion, Runtime: runtimeModule, Version: runtimeVersion()}
			switch {
			case cmd.Flags().Changed("replace") && replace != "":
				if data.Replace, err = filepath.Abs(replace); err != nil {
					return &usageError{fmt.Errorf("--replace: %w", err)}
				}
				if err := checkCheckout(data.Replace); err != nil {
					return &usageError{fmt.Errorf("--replace %s: %w", replace, err)}
				}
			case !cmd.Flags().Changed("replace") && data.Version == "":
				data.Replace = sourceCheckout()
			}
			if data.Version == "" {
				data.Version = placeholderVersion
				if data.Replace == "" {
					g.logger().Warn(fmt.Sprintf("this xcomponent is a development build with no release version: go.mod requires %s %s, which the go command cannot download; pass --replace PATH to a checkout of %s, or edit go.mod",
						runtimeModule, placeholderVersion, runtimeModule))
				}
			}

			files, err := renderSkeleton(data, dist)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if err := prepareDir(dir, args[0], force); err != nil {
				return &exitError{code: 1, err: err}
			}
			names := make([]string, 0, len(files))
			for n := range files {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
					return &exitError{code: 1, err: err}
				}
			}

			w := g.stdout
			fmt.Fprintf(w, "created %s (module %s, component %s):\n", args[0], modPath, name)
			for _, n := range names {
				fmt.Fprintf(w, "  %s\n", n)
			}
			if data.Replace != "" {
				fmt.Fprintf(w, "go.mod takes %s from %s (replace directive)\n", runtimeModule, data.Replace)
			}
			fmt.Fprintf(w, "next:\n  cd %s\n  go mod tidy\n  go test ./...\n  go run .\n", args[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modPath, "module", "", "module path of the project (default example.com/<DIR base name>)")
	f.StringVar(&name, "name", defaultComponentName, "component name, ^[A-Za-z][A-Za-z0-9_-]*$")
	f.StringVar(&replace, "replace", "", "local checkout of "+runtimeModule+" to use (go.mod replace directive); '' for none")
	f.BoolVar(&dist, "distributed", false, "scaffold a distributed runtime (RabbitMQ, shared database) with the Go hook")
	f.BoolVar(&force, "force", false, "write into a non-empty DIR, overwriting files of the same name")
	return cmd
}

// renderSkeleton returns the files of a project: name (relative to its root) → content.
// A distributed project takes the files of skeleton/distributed instead of those of the same
// name.
func renderSkeleton(data skeletonData, distributed bool) (map[string][]byte, error) {
	tmpls, err := fs.Glob(skeletonFS, "skeleton/*.tmpl")
	if err != nil {
		return nil, err
	}
	if distributed {
		for i, p := range tmpls {
			if d := "skeleton/distributed/" + path.Base(p); fileExists(skeletonFS, d) {
				tmpls[i] = d
			}
		}
	}
	files := make(map[string][]byte, len(tmpls))
	for _, p := range tmpls {
		src, err := skeletonFS.ReadFile(p)
		if err != nil {
			return nil, err
		}
		t, err := template.New(path.Base(p)).Delims("[[", "]]").Funcs(template.FuncMap{"modquote": modQuote}).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("skeleton template %s: %w", p, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return nil, fmt.Errorf("skeleton template %s: %w", p, err)
		}
		name := strings.TrimSuffix(path.Base(p), ".tmpl")
		if name == "gitignore" { // a dotfile would need embed's all: prefix
			name = ".gitignore"
		}
		out := buf.Bytes()
		if strings.HasSuffix(name, ".go") {
			if out, err = format.Source(out); err != nil {
				return nil, fmt.Errorf("skeleton template %s: generated Go does not parse: %w", p, err)
			}
		}
		files[name] = out
	}
	return files, nil
}

func fileExists(fsys fs.FS, name string) bool {
	_, err := fs.Stat(fsys, name)
	return err == nil
}

// prepareDir creates dir, or accepts it when it is empty (or force is set).
func prepareDir(dir, shown string, force bool) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s exists and is not a directory", shown)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 && !force {
		return fmt.Errorf("%s is not empty (%d entries): choose a new or empty directory, or pass --force to write the skeleton into it (files of the same name are overwritten)", shown, len(entries))
	}
	return nil
}

// runtimeVersion returns the version of this runtime that a generated go.mod can require:
// the module version of this binary when it is a release or a pseudo-version, else the
// version set at link time (-X main.version) when it is one, else "".
func runtimeVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		if info.Main.Path == runtimeModule && semverRE.MatchString(info.Main.Version) {
			return info.Main.Version
		}
		for _, d := range info.Deps {
			if d.Path == runtimeModule && d.Replace == nil && semverRE.MatchString(d.Version) {
				return d.Version
			}
		}
	}
	if v := "v" + strings.TrimPrefix(version, "v"); semverRE.MatchString(v) {
		return v
	}
	return ""
}

// sourceCheckout returns the root of the checkout this binary was built from, when its
// sources are still there: the path the compiler recorded for this file (absolute unless
// built with -trimpath), two directories up, holding the runtime's go.mod. Else "".
func sourceCheckout() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	if checkCheckout(root) != nil {
		return ""
	}
	return root
}

// checkCheckout reports whether dir is the root of a checkout of the runtime module.
func checkCheckout(dir string) error {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("not a checkout of %s: %w", runtimeModule, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			mod := fields[1]
			if u, err := strconv.Unquote(mod); err == nil {
				mod = u
			}
			if mod != runtimeModule {
				return fmt.Errorf("go.mod declares module %s, not %s", mod, runtimeModule)
			}
			return nil
		}
	}
	return fmt.Errorf("go.mod declares no module, want %s", runtimeModule)
}

// modQuote quotes a go.mod token when it needs it (a path with spaces, say).
func modQuote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"'`(),") || strings.Contains(s, "//") || strings.Contains(s, "/*") {
		return strconv.Quote(s)
	}
	return s
}

// moduleElem turns a directory name into a module path element.
func moduleElem(base string) string {
	s := strings.Trim(notModuleChar.ReplaceAllString(strings.ToLower(base), "-"), "-.")
	if s == "" {
		return "app"
	}
	return s
}

// checkModulePath is a conservative check of a module path: slash-separated elements of
// letters, digits and -._~, none empty, none starting or ending with a dot.
func checkModulePath(p string) error {
	if p == "" {
		return errors.New("empty module path")
	}
	for _, e := range strings.Split(p, "/") {
		if !moduleElemRE.MatchString(e) {
			return fmt.Errorf("element %q: want letters, digits and -._~", e)
		}
		if strings.HasPrefix(e, ".") || strings.HasSuffix(e, ".") {
			return fmt.Errorf("element %q starts or ends with a dot", e)
		}
	}
	return nil
}

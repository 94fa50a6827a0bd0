package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/xcomponent/xcomponent/store"
	"github.com/xcomponent/xcomponent/store/internal/sqlstore"
)

// Match implements store.Matcher: the live rows of the machine (index of migration 0004),
// narrowed in SQL by the equality conditions on strings (json_extract), then checked exactly
// with store.MatchData, the reference semantics (SQLite's JSON functions blur booleans and
// numbers, so the SQL part only narrows).
func (s *Store) Match(ctx context.Context, q store.MatchQuery) ([]store.Instance, error) {
	where := []string{"component_name = ?", "machine_name = ?", "status = 'active'"}
	args := []any{q.Component, q.Machine}
	if q.State != "" {
		where = append(where, "current_state = ?")
		args = append(args, q.State)
	}
	for _, c := range q.Conds {
		if _, ok := store.NormalOp(c.Op); !ok {
			return nil, fmt.Errorf("match %s/%s: unknown operator %q on %s", q.Component, q.Machine, c.Op, c.Path)
		}
		str, isString := c.Value.(string)
		op, _ := store.NormalOp(c.Op)
		if op != store.OpEq || !isString || strings.Contains(c.Path, `"`) {
			continue
		}
		path := `$."` + strings.ReplaceAll(c.Path, ".", `"."`) + `"`
		where = append(where, "json_type(context, ?) = 'text' AND json_extract(context, ?) = ?")
		args = append(args, path, path, str)
	}
	all, err := sqlstore.QueryAll(ctx, sqlstore.StdDB(s.db), scanInstance, selectSnapshot+" WHERE "+strings.Join(where, " AND "), args...)
	if err != nil {
		return nil, fmt.Errorf("match %s/%s: %w", q.Component, q.Machine, err)
	}
	var out []store.Instance
	for _, in := range all {
		if store.MatchData(q.Conds, in.Data) {
			out = append(out, in)
		}
	}
	return out, nil
}

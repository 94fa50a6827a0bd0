package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/xcomponent/xcomponent/store"
)

const selectSnapshot = `SELECT instance_id::text, component_name, machine_name, current_state, context, status,
	is_entry_point, parent_instance_id::text, parent_machine_name, created_at, updated_at, version, pending_timeouts
	FROM fsm_snapshots`

func scanInstance(r pgx.Row) (store.Instance, error) {
	var (
		in                            store.Instance
		comp, status, parent, parentM *string
		entry                         *bool
		created, updated              *time.Time
		version                       *int64
		data, timers                  []byte
	)
	if err := r.Scan(&in.ID, &comp, &in.Machine, &in.State, &data, &status, &entry, &parent, &parentM,
		&created, &updated, &version, &timers); err != nil {
		return in, err
	}
	in.Component, in.ParentID, in.ParentMachine = deref(comp), deref(parent), deref(parentM)
	in.Status = store.Status(deref(status))
	in.IsEntryPoint = entry != nil && *entry
	if created != nil {
		in.CreatedAt = created.UnixMilli()
	}
	if updated != nil {
		in.UpdatedAt = updated.UnixMilli()
	}
	if version != nil {
		in.Version = *version
	}
	var err error
	if in.Data, err = decodeMap(data); err != nil {
		return in, fmt.Errorf("instance %s context: %w", in.ID, err)
	}
	if len(timers) > 0 && string(timers) != "[]" && string(timers) != "null" {
		if err := json.Unmarshal(timers, &in.Timers); err != nil {
			return in, fmt.Errorf("instance %s pending_timeouts: %w", in.ID, err)
		}
	}
	return in, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func decodeMap(b []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(b) == 0 || string(b) == "null" || string(b) == "{}" {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Instance implements store.Store.
func (s *Store) Instance(ctx context.Context, id string) (store.Instance, error) {
	if _, err := uuid.Parse(id); err != nil {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, store.ErrNotFound)
	}
	in, err := scanInstance(s.pool.QueryRow(ctx, selectSnapshot+" WHERE instance_id = $1::uuid", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, err)
	}
	return in, nil
}

func (s *Store) instances(ctx context.Context, query string, args ...any) ([]store.Instance, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// LoadLive implements store.Store.
func (s *Store) LoadLive(ctx context.Context, component string) ([]store.Instance, error) {
	out, err := s.instances(ctx, selectSnapshot+
		` WHERE component_name = $1 AND (status = 'active' OR is_entry_point) ORDER BY created_at, instance_id`, component)
	if err != nil {
		return nil, fmt.Errorf("load live %s: %w", component, err)
	}
	return out, nil
}

// A cursor is the (updatedAt, id) of the last instance of a page, in the (updated_at DESC,
// instance_id ASC) order; the next page starts after it.
func encodeCursor(updated int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(updated, 10) + "|" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		ms, id, ok := strings.Cut(string(b), "|")
		if n, err := strconv.ParseInt(ms, 10, 64); ok && err == nil {
			if _, err := uuid.Parse(id); err == nil {
				return n, id, nil
			}
		}
	}
	return 0, "", fmt.Errorf("search: cursor %q: %w", c, store.ErrBadCursor)
}

// likeEscaper escapes LIKE wildcards (the default escape character is the backslash).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Search implements store.Store. Text is matched case-insensitively (ILIKE) in the id and in
// the JSONB text of the data, which PostgreSQL renders with a space after ':' and ','.
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Instance, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Component != "" {
		where = append(where, "component_name = "+arg(q.Component))
	}
	if q.Machine != "" {
		where = append(where, "machine_name = "+arg(q.Machine))
	}
	if q.State != "" {
		where = append(where, "current_state = "+arg(q.State))
	}
	if q.Status != "" {
		where = append(where, "status = "+arg(string(q.Status)))
	}
	if q.ParentID != "" {
		if _, err := uuid.Parse(q.ParentID); err != nil {
			return nil, "", nil // no instance has that parent
		}
		where = append(where, "parent_instance_id = "+arg(q.ParentID)+"::uuid")
	}
	if q.From > 0 {
		where = append(where, "updated_at >= "+arg(time.UnixMilli(q.From)))
	}
	if q.To > 0 {
		where = append(where, "updated_at <= "+arg(time.UnixMilli(q.To)))
	}
	if q.Text != "" {
		p := arg("%" + likeEscaper.Replace(q.Text) + "%")
		where = append(where, "(instance_id::text ILIKE "+p+" OR context::text ILIKE "+p+")")
	}
	if q.Cursor != "" {
		ms, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		t := arg(time.UnixMilli(ms))
		where = append(where, "(updated_at < "+t+" OR (updated_at = "+t+" AND instance_id > "+arg(id)+"::uuid))")
	}
	query := selectSnapshot
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY updated_at DESC, instance_id ASC LIMIT " + arg(limit+1)
	out, err := s.instances(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(last.UpdatedAt, last.ID)
	}
	return out, next, nil
}

const selectEvent = `SELECT id::text, instance_id::text, component_name, machine_name, event_type, event_payload,
	from_state, to_state, context, source_component_name, correlation_id::text, causation_id::text, actor, source, seq,
	persisted_at, note FROM fsm_events`

func (s *Store) events(ctx context.Context, query string, arg string) ([]store.Event, error) {
	out := []store.Event{}
	if _, err := uuid.Parse(arg); err != nil {
		return out, nil // no such id can be stored
	}
	rows, err := s.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e                                                     store.Event
			comp, from, to, src, corr, cause, actor, source, note *string
			seq                                                   *int64
			payload, data                                         []byte
		)
		if err := rows.Scan(&e.ID, &e.InstanceID, &comp, &e.Machine, &e.Type, &payload, &from, &to, &data, &src,
			&corr, &cause, &actor, &source, &seq, &e.PersistedAt, &note); err != nil {
			return nil, err
		}
		e.Note = deref(note)
		e.Component, e.FromState, e.ToState, e.SourceComponent = deref(comp), deref(from), deref(to), deref(src)
		e.CorrelationID, e.CausationID, e.Actor, e.Source = deref(corr), deref(cause), deref(actor), deref(source)
		if seq != nil {
			e.Seq = *seq
		}
		if e.Payload, err = decodeMap(payload); err != nil {
			return nil, fmt.Errorf("event %s payload: %w", e.ID, err)
		}
		if e.Data, err = decodeMap(data); err != nil {
			return nil, fmt.Errorf("event %s context: %w", e.ID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// History implements store.Store: by instance version, then time and insertion order (rows
// written by xcomponent-ai have no version and come first).
func (s *Store) History(ctx context.Context, instanceID string) ([]store.Event, error) {
	out, err := s.events(ctx, selectEvent+
		` WHERE instance_id = $1::uuid ORDER BY seq NULLS FIRST, persisted_at, ord NULLS FIRST`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", instanceID, err)
	}
	return out, nil
}

// Correlated implements store.Store.
func (s *Store) Correlated(ctx context.Context, correlationID string) ([]store.Event, error) {
	out, err := s.events(ctx, selectEvent+
		` WHERE correlation_id = $1::uuid ORDER BY persisted_at, id`, correlationID)
	if err != nil {
		return nil, fmt.Errorf("correlated %s: %w", correlationID, err)
	}
	return out, nil
}

// PendingOutbox implements store.Store.
func (s *Store) PendingOutbox(ctx context.Context, component string, limit int) ([]store.Message, error) {
	query := `SELECT id, component, kind, body, created_at FROM outbox`
	var args []any
	if component != "" {
		query += ` WHERE component = $1`
		args = append(args, component)
	}
	query += ` ORDER BY seq`
	if limit > 0 {
		query += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("pending outbox: %w", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var m store.Message
		if err := rows.Scan(&m.ID, &m.Component, &m.Kind, &m.Body, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("pending outbox: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending outbox: %w", err)
	}
	return out, nil
}

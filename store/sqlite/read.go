package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/xcomponent/xcomponent/store"
)

const selectSnapshot = `SELECT instance_id, component_name, machine_name, current_state, context, status, is_entry_point,
	parent_instance_id, parent_machine_name, created_at, updated_at, version, pending_timeouts FROM fsm_snapshots`

type scanner interface{ Scan(dest ...any) error }

// scanInstance reads one selectSnapshot row; raw receives the context JSON text.
func scanInstance(r scanner, raw *string) (store.Instance, error) {
	var (
		in                                    store.Instance
		comp, status, parent, parentM, timers sql.NullString
		entry, created, updated, version      sql.NullInt64
		data                                  sql.NullString
	)
	if err := r.Scan(&in.ID, &comp, &in.Machine, &in.State, &data, &status, &entry, &parent, &parentM,
		&created, &updated, &version, &timers); err != nil {
		return in, err
	}
	in.Component, in.Status, in.ParentID, in.ParentMachine = comp.String, store.Status(status.String), parent.String, parentM.String
	in.IsEntryPoint = entry.Int64 != 0
	in.CreatedAt, in.UpdatedAt, in.Version = created.Int64, updated.Int64, version.Int64
	if raw != nil {
		*raw = data.String
	}
	if err := decodeInstanceJSON(&in, data.String, timers.String); err != nil {
		return in, err
	}
	return in, nil
}

func decodeInstanceJSON(in *store.Instance, data, timers string) error {
	if data != "" && data != "null" {
		if err := json.Unmarshal([]byte(data), &in.Data); err != nil {
			return fmt.Errorf("instance %s: context: %w", in.ID, err)
		}
	}
	if in.Data == nil {
		in.Data = map[string]any{}
	}
	if timers != "" && timers != "[]" && timers != "null" {
		if err := json.Unmarshal([]byte(timers), &in.Timers); err != nil {
			return fmt.Errorf("instance %s: pending_timeouts: %w", in.ID, err)
		}
	}
	return nil
}

// Instance implements store.Store.
func (s *Store) Instance(ctx context.Context, id string) (store.Instance, error) {
	in, err := scanInstance(s.db.QueryRowContext(ctx, selectSnapshot+" WHERE instance_id = ?", id), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Instance{}, fmt.Errorf("instance %s: %w", id, err)
	}
	return in, nil
}

// LoadLive implements store.Store.
func (s *Store) LoadLive(ctx context.Context, component string) ([]store.Instance, error) {
	rows, err := s.db.QueryContext(ctx, selectSnapshot+
		` WHERE component_name = ? AND (status = 'active' OR is_entry_point <> 0) ORDER BY created_at, instance_id`, component)
	if err != nil {
		return nil, fmt.Errorf("load live %s: %w", component, err)
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		in, err := scanInstance(rows, nil)
		if err != nil {
			return nil, fmt.Errorf("load live %s: %w", component, err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load live %s: %w", component, err)
	}
	return out, nil
}

// encodeCursor and decodeCursor: a page ends at (updatedAt, id) in (updated_at DESC,
// instance_id ASC) order; the next page starts after it.
func encodeCursor(updated int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(updated, 10) + "|" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		ms, id, ok := strings.Cut(string(b), "|")
		if n, err := strconv.ParseInt(ms, 10, 64); ok && err == nil && id != "" {
			return n, id, nil
		}
	}
	return 0, "", fmt.Errorf("search: cursor %q: %w", c, store.ErrBadCursor)
}

// Search implements store.Store. The text filter is applied in Go, with the same rule as the
// memory store (case-insensitive substring of the id or of the data's JSON).
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Instance, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, v ...any) {
		where = append(where, cond)
		args = append(args, v...)
	}
	if q.Component != "" {
		add("component_name = ?", q.Component)
	}
	if q.Machine != "" {
		add("machine_name = ?", q.Machine)
	}
	if q.State != "" {
		add("current_state = ?", q.State)
	}
	if q.Status != "" {
		add("status = ?", string(q.Status))
	}
	if q.ParentID != "" {
		add("parent_instance_id = ?", q.ParentID)
	}
	if q.From > 0 {
		add("updated_at >= ?", q.From)
	}
	if q.To > 0 {
		add("updated_at <= ?", q.To)
	}
	if q.Cursor != "" {
		ms, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		add("(updated_at < ? OR (updated_at = ? AND instance_id > ?))", ms, ms, id)
	}
	query := selectSnapshot
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY updated_at DESC, instance_id ASC"
	text := strings.ToLower(q.Text)
	if text == "" {
		query += " LIMIT ?"
		args = append(args, limit+1)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []store.Instance
	var raw string
	for rows.Next() {
		in, err := scanInstance(rows, &raw)
		if err != nil {
			return nil, "", fmt.Errorf("search: %w", err)
		}
		if text != "" && !strings.Contains(strings.ToLower(in.ID), text) && !strings.Contains(strings.ToLower(raw), text) {
			continue
		}
		out = append(out, in)
		if len(out) > limit {
			break
		}
	}
	if err := rows.Err(); err != nil {
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

const selectEvent = `SELECT id, instance_id, component_name, machine_name, event_type, event_payload, from_state, to_state,
	context, source_component_name, correlation_id, causation_id, actor, source, seq, persisted_at, note FROM fsm_events`

func (s *Store) events(ctx context.Context, query string, arg any) ([]store.Event, error) {
	rows, err := s.db.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Event{}
	for rows.Next() {
		var (
			e                                               store.Event
			comp, payload, from, to, data, src, corr, cause sql.NullString
			actor, source, note                             sql.NullString
			seq                                             sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &e.InstanceID, &comp, &e.Machine, &e.Type, &payload, &from, &to, &data, &src,
			&corr, &cause, &actor, &source, &seq, &e.PersistedAt, &note); err != nil {
			return nil, err
		}
		e.Component, e.FromState, e.ToState, e.SourceComponent = comp.String, from.String, to.String, src.String
		e.CorrelationID, e.CausationID, e.Actor, e.Source, e.Seq = corr.String, cause.String, actor.String, source.String, seq.Int64
		e.Note = note.String
		if e.Payload, err = decodeMap(payload.String); err != nil {
			return nil, fmt.Errorf("event %s payload: %w", e.ID, err)
		}
		if e.Data, err = decodeMap(data.String); err != nil {
			return nil, fmt.Errorf("event %s context: %w", e.ID, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func decodeMap(s string) (map[string]any, error) {
	m := map[string]any{}
	if s == "" || s == "null" || s == "{}" {
		return m, nil
	}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// History implements store.Store: by instance version, then time and insertion order (rows
// written by other tools have no version).
func (s *Store) History(ctx context.Context, instanceID string) ([]store.Event, error) {
	out, err := s.events(ctx, selectEvent+` WHERE instance_id = ? ORDER BY seq NULLS FIRST, persisted_at, rowid`, instanceID)
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", instanceID, err)
	}
	return out, nil
}

// Correlated implements store.Store.
func (s *Store) Correlated(ctx context.Context, correlationID string) ([]store.Event, error) {
	out, err := s.events(ctx, selectEvent+` WHERE correlation_id = ? ORDER BY persisted_at, id`, correlationID)
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
		query += ` WHERE component = ?`
		args = append(args, component)
	}
	query += ` ORDER BY seq`
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
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

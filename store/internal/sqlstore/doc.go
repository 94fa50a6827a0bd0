// Package sqlstore is what the SQL stores (store/sqlite and store/postgres) share: the
// dialect-aware query building (placeholders, id and time parameters), the JSON codecs of
// the data, payload and timer columns, the Search cursor, the migration loader, the common
// options, and the reads that are the same SQL in both (Reads: Instance, LoadLive, Search,
// History, Correlated, PendingOutbox, PruneInbox, CountStates).
//
// What differs between the databases stays in each driver: how rows are written (prepared
// statements and savepoints in SQLite, multi-row unnest statements in PostgreSQL), timer
// claims (SKIP LOCKED), Match, migration locking, and how an instance row is scanned (its
// column types differ). A driver describes itself with a Dialect and reaches its database
// through DB, a small interface that *sql.DB (StdDB) and pgx (in the driver) satisfy.
package sqlstore

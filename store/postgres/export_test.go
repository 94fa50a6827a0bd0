package postgres

// Internals exposed to the tests.
var (
	MatchSQLForTest       = matchSQL
	RouteIndexNameForTest = routeIndexName
)

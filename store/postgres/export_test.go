package postgres

// MatchSQLForTest exposes the routing query to the tests.
var MatchSQLForTest = matchSQL

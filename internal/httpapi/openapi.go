package httpapi

import _ "embed"

// openAPIDoc is the OpenAPI 3 document of the whole API, served at GET /api/openapi.json.
// TestOpenAPICoversRoutes keeps it and the route table in step.
//
//go:embed openapi.json
var openAPIDoc string

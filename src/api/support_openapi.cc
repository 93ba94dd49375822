// The OpenAPI 3 document of the support API (served at /openapi.json). Written by hand, not
// generated from the route table, so that support_api_test's comparison of the two means
// something: every route the server answers is described here and nothing else is.
#include "api/support_api.h"

namespace ch {

std::string_view SupportOpenApiJson() {
  static constexpr std::string_view kDoc = R"json({
 "openapi": "3.0.3",
 "info": {
  "title": "campaign-history support API",
  "version": "1",
  "description": "Read-only queries of the campaign history for support staff (docs/support-api.md). Every 200 body equals the CLI's --json output for the same inputs and says how complete the history is (complete_through, complete)."
 },
 "servers": [
  {
   "url": "/"
  }
 ],
 "paths": {
  "/v1/support/customers/{customer}/as-of": {
   "get": {
    "summary": "A customer's campaigns as they were at a moment",
    "description": "`campaign-history as-of --customer C --at T --json` (with --limit, --cursor, --status, --name).",
    "parameters": [
     {
      "name": "customer",
      "in": "path",
      "required": true,
      "description": "Customer id",
      "schema": {
       "type": "integer",
       "format": "int64",
       "minimum": 1
      }
     },
     {
      "name": "at",
      "in": "query",
      "required": false,
      "description": "The moment: RFC 3339 (2026-11-03T14:05:00Z, 2026-11-03 14:05) or relative to now (now, now-2h, today, yesterday 14:00; UTC days). Required unless cursor continues an answer.",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "description": "At most this many campaigns (a page); default all",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 100000
      }
     },
     {
      "name": "cursor",
      "in": "query",
      "required": false,
      "description": "next_cursor of the previous page (the answer stays at that page's moment)",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "status",
      "in": "query",
      "required": false,
      "description": "Only campaigns with this status; repeatable or comma-separated",
      "schema": {
       "type": "string",
       "enum": [
        "draft",
        "active",
        "paused",
        "ended"
       ]
      }
     },
     {
      "name": "name",
      "in": "query",
      "required": false,
      "description": "Only campaigns whose name contains this text (ASCII letters without case)",
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The same JSON as the CLI's --json",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthenticated"
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "405": {
      "$ref": "#/components/responses/MethodNotAllowed"
     }
    },
    "security": [
     {
      "bearer": []
     }
    ]
   }
  },
  "/v1/support/customers/{customer}/timeline": {
   "get": {
    "summary": "A customer's changes in a window, one transaction at a time",
    "description": "`campaign-history timeline --customer C --from T --json`.",
    "parameters": [
     {
      "name": "customer",
      "in": "path",
      "required": true,
      "description": "Customer id",
      "schema": {
       "type": "integer",
       "format": "int64",
       "minimum": 1
      }
     },
     {
      "name": "from",
      "in": "query",
      "required": true,
      "description": "Window start: RFC 3339 (2026-11-03T14:05:00Z, 2026-11-03 14:05) or relative to now (now, now-2h, today, yesterday 14:00; UTC days)",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "to",
      "in": "query",
      "required": false,
      "description": "Window end (default now)",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "description": "At most this many transactions (default 50; a transaction is never cut)",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 100000
      }
     },
     {
      "name": "cursor",
      "in": "query",
      "required": false,
      "description": "next_cursor of the previous page",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "shifts",
      "in": "query",
      "required": false,
      "description": "fold (default) or show shift-only changes",
      "schema": {
       "type": "string",
       "enum": [
        "fold",
        "show"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The same JSON as the CLI's --json",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthenticated"
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "405": {
      "$ref": "#/components/responses/MethodNotAllowed"
     }
    },
    "security": [
     {
      "bearer": []
     }
    ]
   }
  },
  "/v1/support/campaigns/{id}/log": {
   "get": {
    "summary": "One campaign's versions with what changed",
    "description": "`campaign-history log --campaign ID --json`.",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "Campaign id",
      "schema": {
       "type": "integer",
       "format": "int64",
       "minimum": 1
      }
     },
     {
      "name": "from",
      "in": "query",
      "required": false,
      "description": "Only versions at or after this moment",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "to",
      "in": "query",
      "required": false,
      "description": "Only versions at or before this moment",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "shifts",
      "in": "query",
      "required": false,
      "description": "annotate (default) or hide shift-only versions",
      "schema": {
       "type": "string",
       "enum": [
        "annotate",
        "hide"
       ]
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The same JSON as the CLI's --json",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthenticated"
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "405": {
      "$ref": "#/components/responses/MethodNotAllowed"
     }
    },
    "security": [
     {
      "bearer": []
     }
    ]
   }
  },
  "/v1/support/campaigns/{id}/diff": {
   "get": {
    "summary": "What changed in a campaign between two versions or moments",
    "description": "`campaign-history diff --campaign ID --from A --to B --json` (RFC 6902 patch included).",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "Campaign id",
      "schema": {
       "type": "integer",
       "format": "int64",
       "minimum": 1
      }
     },
     {
      "name": "from",
      "in": "query",
      "required": true,
      "description": "A version number (3, v3) or a moment",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "to",
      "in": "query",
      "required": false,
      "description": "A version number or a moment (default now)",
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The same JSON as the CLI's --json",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthenticated"
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "405": {
      "$ref": "#/components/responses/MethodNotAllowed"
     }
    },
    "security": [
     {
      "bearer": []
     }
    ]
   }
  },
  "/v1/support/campaigns/{id}/blame": {
   "get": {
    "summary": "Who last set each field of a campaign",
    "description": "`campaign-history blame --campaign ID --at T --json`.",
    "parameters": [
     {
      "name": "id",
      "in": "path",
      "required": true,
      "description": "Campaign id",
      "schema": {
       "type": "integer",
       "format": "int64",
       "minimum": 1
      }
     },
     {
      "name": "at",
      "in": "query",
      "required": false,
      "description": "As of this moment (default now)",
      "schema": {
       "type": "string"
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The same JSON as the CLI's --json",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthenticated"
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "405": {
      "$ref": "#/components/responses/MethodNotAllowed"
     }
    },
    "security": [
     {
      "bearer": []
     }
    ]
   }
  },
  "/v1/support/search": {
   "get": {
    "summary": "Find a customer or campaign",
    "description": "`campaign-history search Q --json`.",
    "parameters": [
     {
      "name": "q",
      "in": "query",
      "required": true,
      "description": "A customer id, a campaign id or part of a campaign name",
      "schema": {
       "type": "string"
      }
     },
     {
      "name": "limit",
      "in": "query",
      "required": false,
      "description": "At most this many hits (default 50)",
      "schema": {
       "type": "integer",
       "minimum": 1,
       "maximum": 10000
      }
     }
    ],
    "responses": {
     "200": {
      "description": "The same JSON as the CLI's --json",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     },
     "400": {
      "$ref": "#/components/responses/BadRequest"
     },
     "401": {
      "$ref": "#/components/responses/Unauthenticated"
     },
     "404": {
      "$ref": "#/components/responses/NotFound"
     },
     "405": {
      "$ref": "#/components/responses/MethodNotAllowed"
     }
    },
    "security": [
     {
      "bearer": []
     }
    ]
   }
  },
  "/openapi.json": {
   "get": {
    "summary": "This document",
    "description": "The OpenAPI 3 document of the support API.",
    "parameters": [],
    "responses": {
     "200": {
      "description": "OpenAPI 3.0 document",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     }
    },
    "security": []
   }
  },
  "/healthz": {
   "get": {
    "summary": "Liveness",
    "description": "200 {\"status\":\"ok\"} while the role serves.",
    "parameters": [],
    "responses": {
     "200": {
      "description": "Healthy",
      "content": {
       "application/json": {
        "schema": {
         "type": "object"
        }
       }
      }
     }
    },
    "security": []
   }
  },
  "/metrics": {
   "get": {
    "summary": "Prometheus metrics",
    "description": "Requests by route, method and status; latencies by route; errors by code; the history's own metrics.",
    "parameters": [],
    "responses": {
     "200": {
      "description": "Prometheus text format 0.0.4",
      "content": {
       "text/plain": {
        "schema": {
         "type": "string"
        }
       }
      }
     }
    },
    "security": []
   }
  }
 },
 "components": {
  "securitySchemes": {
   "bearer": {
    "type": "http",
    "scheme": "bearer",
    "description": "A support token (--support-tokens FILE or CAMPAIGN_HISTORY_SUPPORT_TOKENS)"
   }
  },
  "schemas": {
   "Error": {
    "type": "object",
    "required": [
     "error"
    ],
    "properties": {
     "error": {
      "type": "object",
      "required": [
       "code",
       "message"
      ],
      "properties": {
       "code": {
        "type": "string",
        "example": "INVALID_ARGUMENT"
       },
       "message": {
        "type": "string",
        "example": "at: ..."
       }
      }
     }
    }
   }
  },
  "responses": {
   "BadRequest": {
    "description": "A bad parameter (the message names it): a non-numeric id, a bad time, a bad cursor, an unknown or repeated parameter",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "Unauthenticated": {
    "description": "No token, or not a known one (WWW-Authenticate: Bearer)",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "NotFound": {
    "description": "No such route, or no such campaign in the history",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   },
   "MethodNotAllowed": {
    "description": "Only GET and HEAD are served (Allow lists them)",
    "content": {
     "application/json": {
      "schema": {
       "$ref": "#/components/schemas/Error"
      }
     }
    }
   }
  }
 },
 "security": [
  {
   "bearer": []
  }
 ]
})json";
  return kDoc;
}

}  // namespace ch

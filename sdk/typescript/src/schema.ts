// This file is generated from the ctxmesh server's OpenAPI document
// (GET /openapi.json) by openapi-typescript. Do not edit it by hand.
//
// Regenerate it with `npm run generate` in sdk/typescript (it starts the
// server binary named by $CTXMESH_BIN, default ../../target/debug/ctxmesh,
// and fetches the document). test/schema-drift.test.ts fails when it is out
// of date.

export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness: the process serves HTTP. */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Prometheus metrics in the text exposition format. */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/plain": unknown;
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The OpenAPI document of this API. */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Readiness: the store answers. */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                503: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List agents by id. */
        get: {
            parameters: {
                query?: {
                    /** @description Only agents in this status: active, inactive, disconnected. */
                    status?: components["schemas"]["AgentStatus"];
                    /**
                     * @description Only agents with this capability: a free capability string, or
                     *     can_read, can_write, can_share.
                     */
                    capability?: string;
                    /** @description Page size (default 100). */
                    limit?: number;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["AgentList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /**
         * Register an agent (admin only). The answer is `201` with the agent,
         *     its `Location` and, this once, its `token`; a taken id is `409
         *     already_exists`.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["AgentSpec"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["AgentWithToken"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Read the agents feed: `agent.registered`, `agent.disconnected`,
         *     `agent.unregistered`, numbered by its own sequence.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Items after this sequence number (default 0: from the start). */
                    after?: number;
                    /** @description Most items (default 100). */
                    limit?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["StreamPage"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/watch": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Server-Sent Events of the agents feed (from `after`, default 0). */
        get: {
            parameters: {
                query?: {
                    /** @description Deliver items after this sequence number (default: from now on). */
                    after?: number;
                };
                header?: {
                    /** @description Resume after this event id (the SSE `id` of the last event received); wins over `after`. */
                    "Last-Event-ID"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/event-stream": {
                            data: string;
                            event?: string;
                            id?: string;
                            retry?: number;
                        };
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Read an agent. */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Agent"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        /** Unregister an agent; the locks it held are released. */
        delete: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        /**
         * Update an agent: the fields given replace the stored ones; `status`
         *     may be set to `active` or `inactive`.
         */
        patch: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["AgentPatch"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Agent"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        trace?: never;
    };
    "/v1/agents/{id}/heartbeat": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Renew the agent's lease; a disconnected agent becomes active again. */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Agent"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/{id}/inbox": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Read an agent's inbox: everything directed at it (handoffs, tasks,
         *     messages, broadcasts), numbered by its own sequence.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Items after this sequence number (default 0: from the start). */
                    after?: number;
                    /** @description Most items (default 100). */
                    limit?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["StreamPage"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/{id}/inbox/watch": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Server-Sent Events of an agent's inbox: each item's SSE `id` is its
         *     sequence number; `Last-Event-ID` (or `after`) resumes without gap or
         *     repeat.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Deliver items after this sequence number (default: from now on). */
                    after?: number;
                    /** @description Comma-separated event types to keep, e.g. `context.updated,message`. */
                    types?: string;
                    /** @description Only events whose key starts with this (events without a key pass). */
                    prefix?: string;
                    /** @description Only events of at least this priority: low, normal, high, critical. */
                    min_priority?: components["schemas"]["Priority"];
                };
                header?: {
                    /** @description Resume after this event id (the SSE `id` of the last event received); wins over `after`. */
                    "Last-Event-ID"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/event-stream": {
                            data: string;
                            event?: string;
                            id?: string;
                            retry?: number;
                        };
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/{id}/shared": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The contexts an agent can reach by grant (the agent itself or an admin). */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["GrantList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agents/{id}/token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Rotate an agent's token (the agent itself or an admin): the old token
         *     stops working at once.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["NewToken"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        /**
         * Revoke an agent's token (the agent itself or an admin); a new one is
         *     issued by rotation.
         */
        delete: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The agent id: the alphabet of context ids. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The audit log of access decisions on contexts (admin only), oldest
         *     first. Decisions reach it within a fraction of a second.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Only this agent's decisions. */
                    agent?: string;
                    /** @description Only decisions about this context. */
                    context?: string;
                    /** @description Only allowed (true) or denied (false) decisions. */
                    allowed?: boolean;
                    /** @description Only decisions at or after this time (RFC 3339). */
                    since?: string;
                    /** @description Records after this position (default 0). */
                    after?: number;
                    /** @description Page size (default 100). */
                    limit?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["AuditPage"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/backup": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download a consistent copy of the whole database (admin only; the
         *     embedded SQLite store). The copy is made in one read transaction while
         *     writes go on: it holds every write acknowledged before the request
         *     and no part of a later one. `ctxmesh backup` saves it with a manifest;
         *     `ctxmesh restore` puts it in place. A PostgreSQL store is `409
         *     conflict` (`details.store`): back it up with PostgreSQL's tools.
         */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The SQLite database file. */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/vnd.sqlite3": unknown;
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List contexts by id. */
        get: {
            parameters: {
                query?: {
                    /** @description Page size (default 100). */
                    limit?: number;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /** Create a context. */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["NewContext"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextInfo"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                /** @description The `parent` context does not exist */
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Read a context's settings and counters. */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextInfo"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        /** Delete a context with all its entries and history. */
        delete: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        /** Replace some settings of a context (policy, schemas, retention, labels). */
        patch: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ContextPatch"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextInfo"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        trace?: never;
    };
    "/v1/contexts/{ctx}/compact": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Apply the context's retention policy now (it also runs periodically). */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": null | components["schemas"]["Compaction"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/conflicts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The conflicts of a context: the pending ones by default. */
        get: {
            parameters: {
                query?: {
                    /** @description `pending` (the default), `resolved` or `all`. */
                    status?: string;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                    /** @description Page size (default 100). */
                    limit?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConflictList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/conflicts/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One conflict, with its siblings. */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConflictView"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/conflicts/{id}/resolve": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Resolve a pending conflict: `{"choose": "current"}` keeps the entry,
         *     `{"choose": "proposed"}` applies the write kept aside, `{"value": V}`
         *     writes a merged value; `if_match` (default: the conflict's
         *     `current_revision`) is the entry revision the resolution is based on.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ResolveRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Conflict"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                412: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                422: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/consensus": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Weighs the agents' proposals by confidence: when the leading value has
         *     at least `min_agreement` of the total, it is written to `key` (`200`);
         *     otherwise a pending conflict with every candidate is recorded and
         *     `conflict.detected` logged (`202`), to resolve like any conflict.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ConsensusRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConsensusOutcome"];
                    };
                };
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConsensusOutcome"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/context-map": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The context's map: its workflow, and what each agent of it needs and
         *     produces.
         */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextMapView"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        /**
         * Set a context's map, as seed 001 writes it (admin only): each agent's
         *     `needs` and `produces` are registered or replaced (a plain list of
         *     names, or kinds, tags, key patterns and names), and the context's
         *     workflow becomes the agents' order. Everything is checked before
         *     anything changes; sending the same map again changes nothing more.
         */
        put: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ContextMapRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextMapView"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/decisions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Record a decision with the revision the agent read: an entry of kind
         *     `decision` holding `{"decision", "read_revision", "agent"}`, and the
         *     path that rebuilds the package the agent saw at that revision.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["DecisionRequest"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["DecisionRecord"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: components["responses"]["NotFound"];
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/diff": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What changed between revisions `from` and `to`, key by key. */
        get: {
            parameters: {
                query: {
                    /** @description The earlier revision (0: the empty state before creation). */
                    from: number;
                    /** @description The later revision (default: the current one). */
                    to?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Diff"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: components["responses"]["NotFound"];
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/document": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The context's entries as one nested JSON document: `a/b` becomes
         *     `{"a": {"b": value}}`. When a key is also the parent of other keys, its
         *     own value sits under `"_value"` unless it is an object (then the
         *     children are merged into it).
         */
        get: {
            parameters: {
                query?: {
                    /** @description Only keys starting with this string. */
                    prefix?: string;
                    /** @description Read as of this revision. */
                    at?: number;
                    /** @description Read as of this time (RFC 3339). */
                    as_of?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Document"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/entries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List entries by key prefix, optionally as of a revision or time. */
        get: {
            parameters: {
                query?: {
                    /** @description Only keys starting with this string. */
                    prefix?: string;
                    /** @description Page size (default 100). */
                    limit?: number;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                    /** @description Read as of this revision. */
                    at?: number;
                    /** @description Read as of this time (RFC 3339). */
                    as_of?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["EntryList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/entries/{key}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Read one entry (ETag = its revision), or its history when the path ends
         *     in `/history`. A key whose last segment is `history` is read by encoding
         *     the last `/` as `%2F`.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Read as of this revision. */
                    at?: number;
                    /** @description Read as of this time (RFC 3339). */
                    as_of?: string;
                    /** @description History only: versions before this revision. */
                    before?: number;
                    /** @description History only: page size (default 100). */
                    limit?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The entry key: `/`-separated segments of A-Z a-z 0-9 . _ ~ : @ -, at most 512 bytes (a `/` inside the key may be sent as is or as `%2F`). */
                    key: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Entry"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        /**
         * Create or replace an entry. `If-Match: "<revision>"` makes it
         *     conditional; `If-None-Match: *` creates only if absent.
         */
        put: {
            parameters: {
                query?: never;
                header?: {
                    /** @description Write only if the entry's revision is this one (its ETag, `"12"`), or with `*` only if it exists. */
                    "If-Match"?: string;
                    /** @description `*`: write only if the entry does not exist. Not together with `If-Match`. */
                    "If-None-Match"?: "*";
                    /** @description `<lock>=<token>`: refuse the write (`409 fenced`) if a newer token of that lock of the context was issued. */
                    "X-Fencing-Token"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The entry key: `/`-separated segments of A-Z a-z 0-9 . _ ~ : @ -, at most 512 bytes (a `/` inside the key may be sent as is or as `%2F`). */
                    key: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["EntryWrite"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Entry"];
                    };
                };
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Entry"];
                    };
                };
                /** @description Kept aside as a pending conflict (policy `manual`) */
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConflictReport"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: components["responses"]["NotFound"];
                409: components["responses"]["Fenced"];
                412: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                415: components["responses"]["UnsupportedMediaType"];
                422: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                428: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        post?: never;
        /** Delete an entry (optionally conditional on `If-Match`). */
        delete: {
            parameters: {
                query?: never;
                header?: {
                    /** @description Write only if the entry's revision is this one (its ETag, `"12"`), or with `*` only if it exists. */
                    "If-Match"?: string;
                    /** @description `*`: write only if the entry does not exist. Not together with `If-Match`. */
                    "If-None-Match"?: "*";
                    /** @description `<lock>=<token>`: refuse the write (`409 fenced`) if a newer token of that lock of the context was issued. */
                    "X-Fencing-Token"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The entry key: `/`-separated segments of A-Z a-z 0-9 . _ ~ : @ -, at most 512 bytes (a `/` inside the key may be sent as is or as `%2F`). */
                    key: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Deleted"];
                    };
                };
                /** @description Kept aside as a pending conflict (policy `manual`) */
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConflictReport"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: components["responses"]["Fenced"];
                412: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                428: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        /**
         * Patch an entry's value with `application/merge-patch+json` (RFC 7386)
         *     or `application/json-patch+json` (RFC 6902); metadata is kept.
         */
        patch: {
            parameters: {
                query?: never;
                header?: {
                    /** @description Write only if the entry's revision is this one (its ETag, `"12"`), or with `*` only if it exists. */
                    "If-Match"?: string;
                    /** @description `*`: write only if the entry does not exist. Not together with `If-Match`. */
                    "If-None-Match"?: "*";
                    /** @description `<lock>=<token>`: refuse the write (`409 fenced`) if a newer token of that lock of the context was issued. */
                    "X-Fencing-Token"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The entry key: `/`-separated segments of A-Z a-z 0-9 . _ ~ : @ -, at most 512 bytes (a `/` inside the key may be sent as is or as `%2F`). */
                    key: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json-patch+json": ({
                        /** @enum {unknown} */
                        op: "add" | "replace" | "test";
                        path: string;
                        value: unknown;
                    } | {
                        /** @enum {unknown} */
                        op: "remove";
                        path: string;
                    } | {
                        from: string;
                        /** @enum {unknown} */
                        op: "move" | "copy";
                        path: string;
                    })[];
                    "application/merge-patch+json": unknown;
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Entry"];
                    };
                };
                /** @description Kept aside as a pending conflict (policy `manual`) */
                202: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ConflictReport"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: components["responses"]["Fenced"];
                412: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                422: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                428: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        trace?: never;
    };
    "/v1/contexts/{ctx}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The event log of a context, oldest first, gap-free by revision. */
        get: {
            parameters: {
                query?: {
                    /** @description Only events of revisions after this one (default 0: from the start). */
                    after?: number;
                    /**
                     * @description Most events to scan (default 100); all events of a revision are
                     *     always returned together.
                     */
                    limit?: number;
                    /** @description Comma-separated event types to keep, e.g. `context.updated,message`. */
                    types?: string;
                    /** @description Only events whose key starts with this (events without a key pass). */
                    prefix?: string;
                    /** @description Only events of at least this priority: low, normal, high, critical. */
                    min_priority?: components["schemas"]["Priority"];
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["EventList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/fork": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create a new context holding this one's entries as of a revision. */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["ForkRequest"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ContextInfo"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/grants": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The grants of a context (needs `share`). */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["GrantList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /**
         * Share a context: the agents get the permissions (replacing earlier
         *     grants); `context.shared` goes to the log and their inboxes. Needs
         *     `share` on the context (its creator has it).
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["GrantRequest"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["GrantList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        /**
         * Revoke an agent's grant (needs `share`); `context.revoked` goes to the
         *     log and the agent's inbox.
         */
        delete: {
            parameters: {
                query: {
                    /** @description The agent whose grant ends. */
                    agent: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The commits of a context (revision, author, time, keys), newest first. */
        get: {
            parameters: {
                query?: {
                    /** @description Only commits before this revision. */
                    before?: number;
                    /** @description Page size (default 100). */
                    limit?: number;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["CommitList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/locks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List a context's locks. */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["LockList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/locks/{name}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Read a lock (a lock never taken is free with token 0). */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The lock name: 1 to 128 bytes of A-Z a-z 0-9 . _ ~ : @ / -. */
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Lock"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /**
         * Acquire a lock. The caller (`X-Agent-Id`) must be a registered agent.
         *     When another agent holds it, the server retries as the lock is released
         *     or expires, for up to `wait_ms`; the answer says whether the caller got
         *     it (`acquired`) and, either way, who holds it. Each acquisition takes a
         *     new fencing token; send it with writes as `X-Fencing-Token: name=token`.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The lock name: 1 to 128 bytes of A-Z a-z 0-9 . _ ~ : @ / -. */
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["AcquireRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["LockAnswer"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        /** Release a lock (holder only: else `409 not_holder`). */
        delete: {
            parameters: {
                query?: {
                    /** @description The acquisition to release (`lock_id`); default: the caller's. */
                    lock_id?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The lock name: 1 to 128 bytes of A-Z a-z 0-9 . _ ~ : @ / -. */
                    name: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Lock"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/locks/{name}/refresh": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Extend a lock (holder only). The fencing token stays the same. */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                    /** @description The lock name: 1 to 128 bytes of A-Z a-z 0-9 . _ ~ : @ / -. */
                    name: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["RefreshRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Lock"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/package": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The context an agent needs, ranked by relevance and packed into its
         *     token budget (counted with tiktoken): entries whole, summarized, or as
         *     references to fetch; never cut. Entries the caller or the agent may not
         *     read, and confidential entries, are never in it.
         */
        get: {
            parameters: {
                query?: {
                    /** @description The agent it is for (default: the caller). */
                    agent?: string;
                    /** @description Build it as of this revision (what the agent saw then). */
                    at?: number;
                    /** @description Most tokens (default: the agent's `token_budget`). */
                    budget?: number;
                    /** @description `json` (default) or `markdown`. */
                    format?: components["schemas"]["Format"];
                    /** @description `cl100k_base` (default) or `o200k_base`. */
                    encoding?: components["schemas"]["Encoding"];
                    /** @description Include every entry's relevance signals, and the entries left out. */
                    explain?: boolean;
                    /**
                     * @description Summarize entries that do not fit whole (default true); false
                     *     references them instead.
                     */
                    compress?: boolean;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The package: JSON, or Markdown with `format=markdown` */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Package"];
                        "text/markdown": string;
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/rollback": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Restore the state as of `to` as a new revision; history is kept. */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["RollbackRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["RollbackResponse"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/search": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Search the current entries of a context by words, by meaning, or both.
         *     Only entries the caller may read are found, never confidential ones.
         */
        get: {
            parameters: {
                query: {
                    /** @description What to look for: 1 to 4096 characters, not only blanks. */
                    q: string;
                    /**
                     * @description `keyword`, `semantic` or `hybrid` (default: hybrid with a model,
                     *     else keyword).
                     */
                    mode?: components["schemas"]["Mode"];
                    /** @description Most hits (default 10, at most 100). */
                    limit?: number;
                    /** @description Only entries of this kind. */
                    kind?: string;
                    /** @description Only entries carrying every one of these tags (comma-separated). */
                    tags?: string;
                    /** @description Only entries last written by this agent. */
                    author?: string;
                    /** @description Only entries written at or after this time (RFC 3339). */
                    since?: string;
                    /** @description Only entries written before this time (RFC 3339). */
                    until?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["SearchResults"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/tasks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List the tasks of a context. */
        get: {
            parameters: {
                query?: {
                    /** @description Only those of this context. */
                    context?: string;
                    /** @description Only those directed at this agent (handoff target, task assignee). */
                    agent?: string;
                    /**
                     * @description Only those with this status (`state` is read as well, its former
                     *     name).
                     */
                    status?: string;
                    /** @description Page size (default 100). */
                    limit?: number;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["TaskList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /**
         * Assign a task in a context to a registered agent; `task.assigned` goes
         *     to the context's log and the assignee's inbox.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["TaskRequest"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Task"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/txn": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Run a transaction: comparisons, then `success` or `failure` operations,
         *     atomically. A failed comparison is not an error (`succeeded: false`).
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description `<lock>=<token>`: refuse the write (`409 fenced`) if a newer token of that lock of the context was issued. */
                    "X-Fencing-Token"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["TxnRequest"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["TxnResponse"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: components["responses"]["Fenced"];
                413: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                415: components["responses"]["UnsupportedMediaType"];
                422: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                428: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/contexts/{ctx}/watch": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Server-Sent Events of a context: each event's SSE `id` is its revision,
         *     `event` its type, `data` its JSON. `Last-Event-ID` (or `after`)
         *     resumes; `progress` events are bookmarks; `compacted` ends a watch whose
         *     position is gone.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Deliver events of revisions after this one (default: from now on). */
                    after?: number;
                    /** @description `revision` (default) or `priority`: see docs/api.md. */
                    order?: components["schemas"]["Order"];
                    /** @description Comma-separated event types to keep, e.g. `context.updated,message`. */
                    types?: string;
                    /** @description Only events whose key starts with this (events without a key pass). */
                    prefix?: string;
                    /** @description Only events of at least this priority: low, normal, high, critical. */
                    min_priority?: components["schemas"]["Priority"];
                };
                header?: {
                    /** @description Resume after this event id (the SSE `id` of the last event received); wins over `after`. */
                    "Last-Event-ID"?: string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The context id: 1 to 128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit. */
                    ctx: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/event-stream": {
                            data: string;
                            event?: string;
                            id?: string;
                            retry?: number;
                        };
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/handoffs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List handoffs by id. */
        get: {
            parameters: {
                query?: {
                    /** @description Only those of this context. */
                    context?: string;
                    /** @description Only those directed at this agent (handoff target, task assignee). */
                    agent?: string;
                    /**
                     * @description Only those with this status (`state` is read as well, its former
                     *     name).
                     */
                    status?: string;
                    /** @description Page size (default 100). */
                    limit?: number;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["HandoffList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /**
         * Hand work to another agent. The caller is the source; the target must
         *     be registered. The handoff goes to the context's log and the target's
         *     inbox.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["HandoffRequest"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Handoff"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/handoffs/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Read a handoff. */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Handoff"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/handoffs/{id}/package": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The context a handoff carries: the package of its keys (all of the
         *     context when it names none) as of its revision, built for its target
         *     within the target's budget (or `budget`). The caller must be able to
         *     read the handoff (its source, its target, or a reader of its context),
         *     and the package holds only what both the caller and the target may
         *     read.
         */
        get: {
            parameters: {
                query?: {
                    /** @description Most tokens (default: the agent's `token_budget`). */
                    budget?: number;
                    /** @description `json` (default) or `markdown`. */
                    format?: components["schemas"]["Format"];
                    /** @description `cl100k_base` (default) or `o200k_base`. */
                    encoding?: components["schemas"]["Encoding"];
                    /** @description Include every entry's relevance signals, and the entries left out. */
                    explain?: boolean;
                    /**
                     * @description Summarize entries that do not fit whole (default true); false
                     *     references them instead.
                     */
                    compress?: boolean;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The package: JSON, or Markdown with `format=markdown` */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Package"];
                        "text/markdown": string;
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                410: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/handoffs/{id}/{action}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Accept or reject a requested handoff (its target only), or complete an
         *     accepted one (the agent that accepted it). Anyone else is `403
         *     forbidden`; a step the handoff's state does not allow is `409
         *     invalid_transition` and changes nothing.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The handoff */
                    id: string;
                    /** @description accept, reject or complete */
                    action: components["schemas"]["StepAction"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["HandoffStep"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Handoff"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/messages": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Send a priority message to a context's subscribers, to agents, or both.
         *     With a context it is appended to the context's event log as a `message`
         *     event with a revision of its own; with `agents` it also goes to each
         *     one's inbox. At least one of the two is required.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["MessageRequest"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Event"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/policies": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The policy rules (admin only). */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["PolicyList"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        /**
         * Add an access policy rule (admin only): allow or deny a permission on
         *     contexts matching a pattern to agents matching a pattern and a trust
         *     range. Deny wins; see docs/security.md for the order of evaluation.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["PolicyRule"];
                };
            };
            responses: {
                201: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["PolicyList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/policies/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Delete a policy rule (admin only). */
        delete: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                204: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/tasks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** List tasks (by `agent`, `context`, `state`). */
        get: {
            parameters: {
                query?: {
                    /** @description Only those of this context. */
                    context?: string;
                    /** @description Only those directed at this agent (handoff target, task assignee). */
                    agent?: string;
                    /**
                     * @description Only those with this status (`state` is read as well, its former
                     *     name).
                     */
                    status?: string;
                    /** @description Page size (default 100). */
                    limit?: number;
                    /** @description `next_cursor` of the previous page. */
                    cursor?: string;
                };
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["TaskList"];
                    };
                };
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/tasks/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Read a task. */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Task"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/tasks/{id}/complete": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Complete a task (its assignee only, once); `task.completed` goes to the
         *     context's log and the assigner's inbox.
         */
        post: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path: {
                    /** @description The id the server gave it. */
                    id: string;
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["CompleteTask"];
                };
            };
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Task"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                404: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                413: components["responses"]["TooLarge"];
                415: components["responses"]["UnsupportedMediaType"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
                507: components["responses"]["StorageFull"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/whoami": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Who am I: the agent and rights of the caller's credentials (so that a
         *     client holding only an agent token learns its agent id).
         */
        get: {
            parameters: {
                query?: never;
                header?: {
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Identity"];
                    };
                };
                400: components["responses"]["BadRequest"];
                401: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["ErrorBody"];
                    };
                };
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/ws": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Upgrade to the multiplexed watch protocol. */
        get: {
            parameters: {
                query?: never;
                header: {
                    /** @description `Upgrade` */
                    Connection: string;
                    /** @description `websocket` */
                    Upgrade: string;
                    /** @description `13` */
                    "Sec-WebSocket-Version": string;
                    /** @description The client's handshake nonce (RFC 6455) */
                    "Sec-WebSocket-Key": string;
                    /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
                    "X-Agent-Id"?: components["parameters"]["AgentId"];
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description WebSocket; see docs/api.md */
                101: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["BadRequest"];
                401: components["responses"]["Unauthenticated"];
                403: components["responses"]["Forbidden"];
                429: components["responses"]["RateLimited"];
                500: components["responses"]["Internal"];
                503: components["responses"]["Unavailable"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description `POST /v1/contexts/{ctx}/locks/{name}`. */
        AcquireRequest: {
            /**
             * Format: uint64
             * @description How long the lock is held unless refreshed (1 ms to one day).
             */
            ttl_ms: number;
            /**
             * Format: uint64
             * @description How long the server waits for a held lock before answering
             *     `acquired: false` (default 0: answer at once; at most 60000).
             */
            wait_ms?: number;
        };
        /** @description A registered agent, as stored and as returned. */
        Agent: {
            /** @description What it can do. */
            capabilities: components["schemas"]["Capabilities"];
            /** @description The agent id. */
            id: string;
            /** @description Free labels. */
            labels: {
                [key: string]: string;
            };
            /**
             * Format: date-time
             * @description Last heartbeat (or registration).
             */
            last_heartbeat_at: string;
            /**
             * Format: date-time
             * @description When the lease lapses unless renewed.
             */
            lease_expires_at: string;
            /**
             * Format: uint64
             * @description Lease length in milliseconds.
             */
            lease_ms: number;
            /** @description Display name. */
            name: string;
            /** @description The context it consumes. */
            needs: components["schemas"]["ContextMap"];
            /** @description What it is for. */
            objective: string;
            /** @description The context it writes. */
            produces: components["schemas"]["ContextMap"];
            /**
             * Format: date-time
             * @description Registration time.
             */
            registered_at: string;
            /** @description Liveness. */
            status: components["schemas"]["AgentStatus"];
            /**
             * Format: uint64
             * @description Tokens of context per package.
             */
            token_budget: number;
            /** @description Trust level. */
            trust: components["schemas"]["Trust"];
        };
        /** @description A page of agents. */
        AgentList: {
            agents: components["schemas"]["Agent"][];
            /** @description Pass as `cursor` to get the next page; null on the last page. */
            next_cursor?: string | null;
        };
        /** @description A partial update of an agent (`PATCH /v1/agents/{id}`). */
        AgentPatch: {
            capabilities?: null | components["schemas"]["Capabilities"];
            /** @description New labels (replaced whole). */
            labels?: {
                [key: string]: string;
            } | null;
            /**
             * Format: uint64
             * @description New lease length (takes effect at the next heartbeat).
             */
            lease_ms?: number | null;
            /** @description New display name. */
            name?: string | null;
            needs?: null | components["schemas"]["ContextMapInput"];
            /** @description New objective. */
            objective?: string | null;
            produces?: null | components["schemas"]["ContextMapInput"];
            status?: null | ("active" | "inactive");
            /**
             * Format: uint64
             * @description New token budget.
             */
            token_budget?: number | null;
            trust?: null | components["schemas"]["Trust"];
        };
        /** @description What a client sends to register an agent. */
        AgentSpec: {
            /** @description What it can do. */
            capabilities?: components["schemas"]["Capabilities"];
            /** @description The agent id (the alphabet of context ids). */
            id: string;
            /** @description Free labels. */
            labels?: {
                [key: string]: string;
            };
            /**
             * Format: uint64
             * @description Liveness lease in milliseconds, renewed by each heartbeat
             *     (default 30000; 1000 to 86400000).
             */
            lease_ms?: number;
            /** @description A display name (default: the id). */
            name?: string | null;
            /** @description The context it consumes. */
            needs?: components["schemas"]["ContextMapInput"];
            /** @description What it is for, in words (used for relevance). */
            objective?: string;
            /** @description The context it writes. */
            produces?: components["schemas"]["ContextMapInput"];
            /**
             * Format: uint64
             * @description Tokens of context it can take per package (default 8000).
             */
            token_budget?: number;
            /** @description Trust level (default `low`). */
            trust?: components["schemas"]["Trust"];
        };
        /**
         * @description Liveness of an agent.
         * @enum {string}
         */
        AgentStatus: "active" | "inactive" | "disconnected";
        /** @description An agent with its token, shown once. */
        AgentWithToken: components["schemas"]["Agent"] & {
            /** @description The agent's bearer token. Only its hash is kept: store it now. */
            token: string;
        };
        /**
         * @description How arrays changed on both sides merge.
         * @enum {string}
         */
        ArrayMerge: "atomic" | "set";
        /** @description A page of the audit log. */
        AuditPage: {
            /**
             * Format: uint64
             * @description Pass as `after` to read on.
             */
            next_after: number;
            records: components["schemas"]["AuditRecord"][];
        };
        /** @description One access decision, as the audit log keeps it. */
        AuditRecord: {
            /** @description What it asked to do: `read`, `write`, `share`, `admin`, or `authenticate` (a refused token). */
            action: string;
            /** @description The agent that asked. */
            agent: string;
            /** @description Whether it was allowed. */
            allowed: boolean;
            /**
             * Format: date-time
             * @description When the decision was made.
             */
            at: string;
            /** @description The context concerned. */
            context: string;
            /** @description Why: `admin`, `creator`, `grant`, or what was missing. */
            reason: string;
            /** @description The request (`GET /v1/contexts/c/entries/k`). */
            resource: string;
            /**
             * Format: uint64
             * @description Its position in the log (assigned when stored; 0 before).
             */
            seq?: number;
        };
        BTreeMap: {
            [key: string]: number;
        };
        /** @description One distinct value of a consensus, with its support. */
        Candidate: {
            /** @description The agents that proposed it. */
            agents: string[];
            /**
             * Format: double
             * @description Its share of all the weight (0..1).
             */
            agreement: number;
            /** @description The value. */
            value: unknown;
            /**
             * Format: double
             * @description The sum of its supporters' confidence.
             */
            weight: number;
        };
        /** @description What an agent can do. */
        Capabilities: {
            /** @description May read contexts (default true). */
            can_read?: boolean;
            /** @description May share contexts with other agents (default false). */
            can_share?: boolean;
            /** @description May write contexts (default true). */
            can_write?: boolean;
            /**
             * @description Free capability strings (`search`, `summarize`, ...), matched by
             *     `GET /v1/agents?capability=`. Also accepted as `capabilities`.
             */
            custom?: string[];
            /**
             * Format: uint32
             * @description Most contexts it works on at once (default 8; at least 1).
             */
            max_concurrent_contexts?: number;
            /** @description Entry kinds it handles; `*` for any (the default). */
            supported_kinds?: string[];
        };
        /** @description One committed revision of a context. */
        Commit: {
            /**
             * Format: date-time
             * @description Commit time.
             */
            at: string;
            /** @description Who committed it. */
            author: string;
            /** @description Keys changed by the commit. */
            keys: string[];
            /**
             * @description `create`; `put`, `patch`, `delete` or `delete_prefix` (a commit of
             *     that one write); `txn` (a transaction of several writes);
             *     `expire`, `rollback` or `fork`.
             */
            kind: string;
            /**
             * Format: uint64
             * @description The revision.
             */
            revision: number;
        };
        /** @description The commits of a context, newest first. */
        CommitList: {
            commits: components["schemas"]["Commit"][];
            /**
             * Format: uint64
             * @description Pass as `before` for older commits; null when there are none.
             */
            next_before?: number | null;
        };
        /** @description What a compaction pass did to one context. */
        Compaction: {
            /**
             * Format: uint64
             * @description History before this revision is gone.
             */
            compacted_revision: number;
            /** @description The context. */
            context: string;
            /**
             * Format: uint64
             * @description Versions removed.
             */
            versions_removed: number;
        };
        /**
         * @description One comparison. Exactly one of `revision`, `version`, `exists`, `value`
         *     and `vclock` is given. An absent entry has revision 0 and version 0.
         */
        Compare: {
            /** @description Compare whether the entry exists. */
            exists?: boolean;
            /** @description The key compared. */
            key: string;
            /** @description The comparison operator (default `eq`). */
            op?: components["schemas"]["CompareOp"];
            /**
             * Format: uint64
             * @description Compare the entry's revision (its ETag).
             */
            revision?: number;
            /** @description Compare the entry's value (`eq`/`ne` only; an absent entry equals nothing). */
            value?: unknown;
            /**
             * @description A causal precondition: the version vector the write was based on.
             *     It holds when the entry's vector does not go beyond it (the writer
             *     has seen every write to the entry: the write descends from it); an
             *     absent entry matches an empty vector.
             */
            vclock?: {
                [key: string]: number;
            };
            /**
             * Format: uint64
             * @description Compare the entry's version.
             */
            version?: number;
        } & (unknown | unknown | {
            /** @enum {unknown} */
            op?: "eq" | "ne";
        } | {
            /** @enum {unknown} */
            op?: "eq" | "ne";
        } | {
            /** @enum {unknown} */
            op?: "eq" | "ne";
        });
        /**
         * @description How a comparison compares.
         * @enum {string}
         */
        CompareOp: "eq" | "ne" | "lt" | "gt";
        /** @description `POST /v1/tasks/{id}/complete`. */
        CompleteTask: {
            /** @description What the task produced: any JSON. */
            output?: unknown;
        };
        /** @description The signals of one entry's relevance, each in 0..1. */
        Components: {
            /**
             * Format: double
             * @description Confidence.
             */
            confidence: number;
            /**
             * Format: double
             * @description 1 when an entry the agent needs depends on it.
             */
            dependency: number;
            /**
             * Format: double
             * @description `relevance[agent]`, when the entry has one.
             */
            explicit?: number | null;
            /**
             * Format: double
             * @description 1 when the agent's needs name the entry.
             */
            needs: number;
            /**
             * Format: double
             * @description Priority.
             */
            priority: number;
            /**
             * Format: double
             * @description Recency.
             */
            recency: number;
            /**
             * Format: double
             * @description Semantic similarity to the objective, when a model is configured.
             */
            semantic?: number | null;
            /**
             * Format: double
             * @description Keyword similarity to the objective, when there is one.
             */
            text?: number | null;
        };
        /** @description One conflict on one entry. */
        Conflict: {
            /** @description Who wrote the stale write. */
            author: string;
            /**
             * Format: uint64
             * @description The revision the writer had read, when known.
             */
            base_revision?: number | null;
            /**
             * @description A consensus that fell short: every candidate value with its
             *     weight and supporters (the leading one is `proposed`).
             */
            candidates?: components["schemas"]["Candidate"][];
            /** @description Whether the entry is confidential. */
            confidential?: boolean;
            /** @description The context. */
            context: string;
            /** @description Who wrote that version. */
            current_author?: string | null;
            /**
             * Format: uint64
             * @description The entry's revision when the write arrived (0: it was absent).
             */
            current_revision: number;
            /**
             * Format: date-time
             * @description When.
             */
            detected_at: string;
            /**
             * Format: uint64
             * @description The revision that recorded the conflict.
             */
            detected_revision: number;
            /** @description JSON pointers of the fields both sides changed (`merge`). */
            fields?: string[];
            /** @description Its id within the context (`<revision>.<n>`). */
            id: string;
            /** @description The entry's key. */
            key: string;
            /** @description How the write ended. */
            outcome: components["schemas"]["Outcome"];
            proposed?: null | components["schemas"]["Proposed"];
            resolution?: null | components["schemas"]["Resolution"];
            /** @description `low` when the policy settled it, `high` when escalated. */
            severity: components["schemas"]["Severity"];
            /** @description `pending` or `resolved`. */
            status: components["schemas"]["ConflictStatus"];
            /** @description The strategy that met the stale write. */
            strategy: components["schemas"]["Strategy"];
            /** @description The entry's tags (for access decisions). */
            tags?: string[];
        };
        /** @description A page of conflicts. */
        ConflictList: {
            conflicts: components["schemas"]["Conflict"][];
            /** @description Pass as `cursor` for the next page. */
            next_cursor?: string | null;
        };
        /** @description What a transaction reports about one stale write. */
        ConflictReport: {
            /** @description The conflict record, when one was kept. */
            conflict?: string | null;
            current?: null | components["schemas"]["Entry"];
            /** @description Fields changed both ways. */
            fields?: string[];
            /** @description The key. */
            key: string;
            /** @description How it ended. */
            outcome: components["schemas"]["Outcome"];
            /** @description Why it was refused, for `rejected`. */
            reason?: string | null;
            /** @description The strategy that met it. */
            strategy: components["schemas"]["Strategy"];
        };
        /**
         * @description Where a conflict stands.
         * @enum {string}
         */
        ConflictStatus: "pending" | "resolved";
        /**
         * @description A conflict with its siblings: the entry as it was when the write came
         *     (`current`), next to the write kept aside (`proposed`).
         */
        ConflictView: components["schemas"]["Conflict"] & {
            current?: null | components["schemas"]["Entry"];
        };
        /** @description What a consensus came to. */
        ConsensusOutcome: {
            /** @description Whether the leading value reached `min_agreement`. */
            agreed: boolean;
            /**
             * Format: double
             * @description The leading value's share of the total confidence.
             */
            agreement: number;
            /** @description Every distinct value with its weight and supporters, heaviest first. */
            candidates: components["schemas"]["Candidate"][];
            conflict?: null | components["schemas"]["Conflict"];
            entry?: null | components["schemas"]["Entry"];
        };
        /** @description `POST /v1/contexts/{ctx}/consensus`. */
        ConsensusRequest: {
            /** @description The entry the consensus decides: the agreed value is written there. */
            key: string;
            /**
             * Format: double
             * @description The share of the total confidence the leading value needs
             *     (default 0.5; above half of it is a majority).
             */
            min_agreement?: number;
            /** @description The agents' proposals. */
            proposals: components["schemas"]["Proposal"][];
        };
        /** @description A context id: `[A-Za-z0-9][A-Za-z0-9._:-]{0,127}`. */
        ContextId: string;
        /** @description A context as read: its settings and its state counters. */
        ContextInfo: components["schemas"]["ContextSettings"] & {
            /**
             * Format: uint64
             * @description History before this revision was compacted away (0: nothing compacted).
             */
            compacted_revision: number;
            /**
             * Format: date-time
             * @description Creation time.
             */
            created_at: string;
            /** @description The agent that created the context. */
            created_by: string;
            /**
             * Format: uint64
             * @description Number of live entries.
             */
            entry_count: number;
            forked_from?: null | components["schemas"]["ForkOrigin"];
            /** @description The context id. */
            id: string;
            /** @description The parent context, when created by inheritance. */
            parent?: string | null;
            /**
             * Format: uint64
             * @description The current revision (1 after create, +1 per committed transaction).
             */
            revision: number;
            /**
             * Format: date-time
             * @description Time of the last commit or settings change.
             */
            updated_at: string;
        };
        /** @description A page of contexts. */
        ContextList: {
            contexts: components["schemas"]["ContextInfo"][];
            /** @description Pass as `cursor` to get the next page; null on the last page. */
            next_cursor?: string | null;
        };
        /**
         * @description Which entries an agent consumes (`needs`) or writes (`produces`):
         *     entry kinds, tags, key patterns and plain names, minus what `exclude`
         *     names. It is written as an object of those, or as a plain list of
         *     names (`["key_findings", "brand/guidelines"]`, as seed 001's context
         *     maps are): a name matches an entry by its kind, one of its tags, its
         *     key, or a prefix of its key up to a `/`.
         */
        ContextMap: {
            /** @description What not to include even when the above match. */
            exclude?: null | {
                /** @description Key patterns (`findings/*`, `brand/**`). */
                keys?: string[];
                /** @description Entry kinds. */
                kinds?: string[];
                /**
                 * @description Plain names: each matches an entry of that kind, with that tag, at
                 *     that key, or under it (`brand/guidelines` matches
                 *     `brand/guidelines/tone`).
                 */
                names?: string[];
                /** @description Entry tags. */
                tags?: string[];
            } | string[];
            /** @description Key patterns (`findings/*`, `brand/**`). */
            keys?: string[];
            /** @description Entry kinds. */
            kinds?: string[];
            /**
             * @description Plain names: each matches an entry of that kind, with that tag, at
             *     that key, or under it (`brand/guidelines` matches
             *     `brand/guidelines/tone`).
             */
            names?: string[];
            /** @description Entry tags. */
            tags?: string[];
        };
        /** @description What an agent needs or produces: kinds, tags, key patterns and names, or a plain list of names. */
        ContextMapInput: components["schemas"]["ContextMap"] | string[];
        /** @description A context map: what each agent of the context needs and produces. */
        ContextMapRequest: {
            /**
             * @description Each agent's needs and produces, by agent id, in workflow order.
             *     Agents not yet registered are registered.
             */
            agents: {
                [key: string]: components["schemas"]["MapAgent"];
            };
            /**
             * @description The context's workflow order, when it is not the order of `agents`
             *     (each one of them, once).
             */
            workflow?: string[] | null;
        };
        /**
         * @description A context's map: its workflow and what each of its agents needs and
         *     produces.
         */
        ContextMapView: {
            /**
             * @description What each agent of the workflow needs and produces (agents since
             *     unregistered are left out).
             */
            agents: {
                [key: string]: components["schemas"]["MapAgentView"];
            };
            /** @description The context. */
            context: string;
            /** @description The tokens of the agents this request registered, shown this once. */
            tokens?: {
                [key: string]: string;
            };
            /** @description Its workflow: the agents in order. */
            workflow: string[];
        };
        /** @description `PATCH /v1/contexts/{ctx}`: settings to replace; absent ones stay. */
        ContextPatch: {
            /** @description New labels (replaces all). */
            labels?: {
                [key: string]: string;
            } | null;
            mesh?: null | components["schemas"]["MeshSettings"];
            policy?: null | components["schemas"]["Policy"];
            retention?: null | components["schemas"]["Retention"];
            /** @description New schemas (replaces all). */
            schemas?: {
                [key: string]: Record<string, unknown>;
            } | null;
        };
        /** @description The settings of a context that users choose. */
        ContextSettings: {
            /** @description Free labels. */
            labels?: {
                [key: string]: string;
            };
            /** @description Relevance weights, thresholds and the workflow (docs/mesh.md). */
            mesh?: components["schemas"]["MeshSettings"];
            /** @description Conflict policy. */
            policy?: components["schemas"]["Policy"];
            /** @description History retention. */
            retention?: components["schemas"]["Retention"];
            /**
             * @description JSON Schemas by key pattern; a value must satisfy every schema whose
             *     pattern matches its key.
             */
            schemas?: {
                [key: string]: Record<string, unknown>;
            };
        };
        /** @description A recorded decision. */
        DecisionRecord: {
            /** @description The entry holding it (kind `decision`). */
            entry: components["schemas"]["Entry"];
            /** @description Where the package the agent saw is rebuilt. */
            replay: string;
        };
        /** @description `POST /v1/contexts/{ctx}/decisions`. */
        DecisionRequest: {
            /** @description What was decided. */
            decision: unknown;
            /** @description Where to record it (default `decisions/<agent>/<read_revision>`). */
            key?: string | null;
            /**
             * Format: uint64
             * @description The context revision the agent read before deciding (1 to the
             *     context's revision).
             */
            read_revision: number;
        };
        /** @description The answer to a deletion. */
        Deleted: {
            key: string;
            /**
             * Format: uint64
             * @description The revision that deleted the entry.
             */
            revision: number;
        };
        /** @description The changes between two revisions. */
        Diff: {
            changes: components["schemas"]["DiffChange"][];
            /** Format: uint64 */
            from: number;
            /** Format: uint64 */
            to: number;
        };
        /** @description One key's change between two revisions. */
        DiffChange: {
            after?: null | components["schemas"]["Entry"];
            before?: null | components["schemas"]["Entry"];
            /** @description The kind of change. */
            change: components["schemas"]["DiffKind"];
            /** @description The key. */
            key: string;
        };
        /**
         * @description How a key differs between two revisions.
         * @enum {string}
         */
        DiffKind: "added" | "removed" | "modified";
        /** @description The entries assembled into one JSON document. */
        Document: {
            /** @description Keys split on `/` into nested objects. */
            document: Record<string, unknown>;
            /**
             * Format: uint64
             * @description The revision the document was read at.
             */
            revision: number;
        };
        /** @description An entry left out of a package. */
        Dropped: {
            explain?: null | components["schemas"]["Components"];
            /** @description The key. */
            key: string;
            /**
             * @description `budget` (no room left, not even for a reference), `threshold`
             *     (below the threshold, listed with `explain=true`) or `excluded`
             *     (the agent's needs exclude it, with `explain=true`).
             */
            reason: string;
            /**
             * Format: uint64
             * @description The entry's revision.
             */
            revision: number;
            /**
             * Format: double
             * @description Its relevance.
             */
            score: number;
        };
        /**
         * @description Whether a policy rule allows or denies.
         * @enum {string}
         */
        Effect: "allow" | "deny";
        /**
         * @description A tokenizer that ctxmesh counts with.
         * @enum {string}
         */
        Encoding: "cl100k_base" | "o200k_base";
        /** @description One entry of a context as read. */
        Entry: components["schemas"]["EntryMeta"] & {
            /** @description The agent that made the last change. */
            author: string;
            /**
             * Format: uint64
             * @description The context revision that created the entry.
             */
            created_revision: number;
            /** @description The entry's key. */
            key: string;
            /**
             * Format: uint64
             * @description The context revision of the entry's last change; its ETag.
             */
            revision: number;
            /**
             * Format: date-time
             * @description Time of the last change.
             */
            updated_at: string;
            /** @description Any JSON value. */
            value: unknown;
            /** @description Writes per agent to this entry. */
            vclock?: components["schemas"]["BTreeMap"];
            /**
             * Format: uint64
             * @description 1 on create, +1 on each update; restarts at 1 after delete and re-create.
             */
            version: number;
        };
        /** @description A page of entries read at one revision. */
        EntryList: {
            entries: components["schemas"]["Entry"][];
            /** @description Pass as `cursor` for the next page (it reads the same revision). */
            next_cursor?: string | null;
            /**
             * Format: uint64
             * @description The context revision the page was read at.
             */
            revision: number;
        };
        /** @description Descriptive metadata of an entry, set by its writer. */
        EntryMeta: {
            /**
             * Format: double
             * @description The writer's confidence in the value, 0..1.
             */
            confidence?: number | null;
            /** @description Confidential entries reach only agents with explicit read access. */
            confidential?: boolean;
            /** @description Keys of entries this one depends on. */
            depends_on?: string[];
            /**
             * Format: date-time
             * @description When the entry expires (its removal is a revision of its own).
             */
            expires_at?: string | null;
            /**
             * @description Free string; well-known: objective, constraint, finding, decision,
             *     output, message, note.
             */
            kind?: string | null;
            /** @description Urgency of the entry. */
            priority?: components["schemas"]["Priority"];
            /** @description Explicit relevance per agent id, 0..1. */
            relevance?: {
                [key: string]: number;
            };
            /** @description Free tags. */
            tags?: string[];
        };
        /**
         * @description The body of a write (`PUT` or a transaction's `put`): a value and its
         *     metadata. A write replaces the value and all metadata; fields left out
         *     take their defaults.
         */
        EntryWrite: {
            /**
             * Format: double
             * @description See [`EntryMeta::confidence`].
             */
            confidence?: number | null;
            /** @description See [`EntryMeta::confidential`]. */
            confidential?: boolean;
            /** @description See [`EntryMeta::depends_on`]. */
            depends_on?: string[];
            /**
             * Format: date-time
             * @description Absolute expiry; exclusive with `ttl_ms`.
             */
            expires_at?: string | null;
            /** @description See [`EntryMeta::kind`]. */
            kind?: string | null;
            /** @description See [`EntryMeta::priority`]. */
            priority?: components["schemas"]["Priority"];
            /** @description See [`EntryMeta::relevance`]. */
            relevance?: {
                [key: string]: number;
            };
            /** @description See [`EntryMeta::tags`]. */
            tags?: string[];
            /**
             * Format: uint64
             * @description Time to live from the write, in milliseconds; exclusive with `expires_at`.
             */
            ttl_ms?: number | null;
            /** @description The new value (required; `null` is a value). */
            value: unknown;
            /**
             * @description A causal precondition: the version vector of the entry the write
             *     was based on (as read). The write applies when it descends from the
             *     current entry; otherwise the context's conflict policy decides.
             */
            vclock?: {
                [key: string]: number;
            } | null;
        };
        /** @description The body of every error response. */
        ErrorBody: {
            /** @description The error. */
            error: components["schemas"]["ErrorDetail"];
        };
        /**
         * @description A stable error code: the `error.code` of every error answer
         *     (docs/api.md, "Errors"), in JSON the snake_case string.
         * @enum {string}
         */
        ErrorCode: "invalid_json" | "invalid_body" | "invalid_argument" | "invalid_id" | "invalid_key" | "invalid_txn" | "invalid_patch" | "invalid_schema" | "unauthenticated" | "forbidden" | "not_found" | "method_not_allowed" | "conflict" | "already_exists" | "fenced" | "invalid_transition" | "not_holder" | "disconnected" | "compacted" | "precondition_failed" | "too_large" | "unsupported_media_type" | "schema_violation" | "precondition_required" | "rate_limited" | "internal" | "unavailable" | "storage_full";
        /** @description The `error` object of an error response. */
        ErrorDetail: {
            /** @description Stable code, e.g. `precondition_failed`. */
            code: components["schemas"]["ErrorCode"];
            /** @description Machine-readable details, e.g. the current entry of a `412`. */
            details: Record<string, unknown>;
            /** @description Human-readable message. */
            message: string;
        };
        /** @description One event of a context's log. */
        Event: {
            /** @description The agent whose action appended the event. */
            agent?: string | null;
            /**
             * Format: date-time
             * @description Commit time.
             */
            at: string;
            /** @description The context id. */
            context: string;
            /** @description Type-specific payload. */
            data?: unknown;
            /** @description The entry key, for entry events. */
            key?: string | null;
            priority?: null | components["schemas"]["Priority"];
            /**
             * Format: uint64
             * @description The revision that appended the event.
             */
            revision: number;
            /**
             * Format: uint64
             * @description For an item of an agent's inbox or of the agents feed: its position
             *     in that stream (the context's `revision` says where it came from).
             */
            seq?: number | null;
            /** @description The event type, e.g. `context.updated`. */
            type: string;
        };
        /** @description A page of the event log. */
        EventList: {
            events: components["schemas"]["Event"][];
            /**
             * Format: uint64
             * @description The last revision scanned: pass as `after` to continue. Equal to the
             *     request's `after` when nothing newer exists.
             */
            last_revision: number;
            /** @description Whether more events may follow right away. */
            more: boolean;
        };
        /** @description A fencing token carried by a write: `X-Fencing-Token: <lock>=<token>`. */
        Fence: {
            /** @description The lock's name. */
            lock: string;
            /**
             * Format: uint64
             * @description The token the writer got when it acquired the lock.
             */
            token: number;
        };
        /** @description Where a forked context came from. */
        ForkOrigin: {
            /** @description The source context. */
            context: string;
            /**
             * Format: uint64
             * @description The source revision.
             */
            revision: number;
        };
        /** @description `POST .../fork`. */
        ForkRequest: {
            /**
             * Format: uint64
             * @description The revision to fork from (default: the current one).
             */
            at?: number | null;
            /** @description The new context's id. */
            id: components["schemas"]["ContextId"];
        };
        /**
         * @description How a package is returned.
         * @enum {string}
         */
        Format: "json" | "markdown";
        /** @description Access of one agent to one context. */
        Grant: {
            /** @description The agent. */
            agent: string;
            /** @description The context. */
            context: string;
            /**
             * Format: date-time
             * @description When the grant lapses, if ever.
             */
            expires_at?: string | null;
            /**
             * Format: date-time
             * @description When.
             */
            granted_at: string;
            /** @description Who granted it. */
            granted_by: string;
            /** @description What it may do; `admin` implies the others. */
            permissions: components["schemas"]["Permission"][];
        };
        /** @description Grants. */
        GrantList: {
            grants: components["schemas"]["Grant"][];
        };
        /** @description `POST /v1/contexts/{ctx}/grants`. */
        GrantRequest: {
            /** @description The agents to share with (each must be registered). */
            agents: string[];
            /**
             * Format: date-time
             * @description When the grants lapse (RFC 3339), if ever.
             */
            expires_at?: string | null;
            /** @description read, write, share, admin (`admin` implies the others). */
            permissions: components["schemas"]["Permission"][];
        };
        /** @description A handoff, as stored and returned. */
        Handoff: components["schemas"]["HandoffContext"] & {
            /** @description The context of the work. */
            context: string;
            /**
             * Format: date-time
             * @description Creation time.
             */
            created_at: string;
            /**
             * Format: date-time
             * @description The target must answer before this.
             */
            deadline: string;
            /** @description Its id. */
            id: string;
            /** @description Keys the target should read. */
            keys: string[];
            /** @description Free text for the target. */
            note?: string | null;
            /** @description Why it was rejected, or what completed it (`result`). */
            outcome?: unknown;
            /** @description A prepared package, if any. */
            package?: unknown;
            /**
             * Format: uint64
             * @description The context revision it refers to.
             */
            revision: number;
            /** @description The agent handing over. */
            source: string;
            /** @description Where it is in its life (read from `state` too, its former name). */
            status: components["schemas"]["HandoffState"];
            /** @description The agent asked to take over. */
            target: string;
            /**
             * Format: date-time
             * @description Time of the last transition.
             */
            updated_at: string;
        };
        /**
         * @description The structured context a handoff carries (seed 000's HandoffContext).
         *     It is only ever flattened into a handoff (request), which refuses
         *     unknown fields itself; closing it too would make the OpenAPI schema of
         *     a handoff request one that no object satisfies (`allOf` of two closed
         *     objects).
         */
        HandoffContext: {
            /** @description The conversation so far (messages as the client shapes them). */
            conversation_history?: Record<string, unknown>[];
            /** @description Entities extracted so far (names, ids, amounts...). */
            extracted_entities?: Record<string, unknown>;
            /** @description The user session the work belongs to. */
            session?: string | null;
            /** @description What the user wants, in words. */
            user_intent?: string | null;
        };
        /** @description A page of handoffs. */
        HandoffList: {
            handoffs: components["schemas"]["Handoff"][];
            /** @description Pass as `cursor` to get the next page; null on the last page. */
            next_cursor?: string | null;
        };
        /** @description A request to hand work over (`POST /v1/handoffs`). */
        HandoffRequest: {
            /** @description The context the work is in. */
            context: string;
            /** @description The conversation so far (messages as the client shapes them). */
            conversation_history?: Record<string, unknown>[];
            /**
             * Format: uint64
             * @description Milliseconds the target has to accept or reject (default one hour).
             */
            deadline_ms?: number;
            /** @description Entities extracted so far (names, ids, amounts...). */
            extracted_entities?: Record<string, unknown>;
            /** @description Keys (or patterns) of the context the target should read. */
            keys?: string[];
            /** @description Free text for the target. */
            note?: string | null;
            /** @description A package for the target, as the source prepared it. */
            package?: unknown;
            /**
             * Format: uint64
             * @description The context revision the handoff refers to (default: the current one).
             */
            revision?: number | null;
            /** @description The user session the work belongs to. */
            session?: string | null;
            /** @description The agent asked to take over (must be registered). */
            target: string;
            /** @description What the user wants, in words. */
            user_intent?: string | null;
        };
        /**
         * @description Where a handoff is in its life.
         * @enum {string}
         */
        HandoffState: "requested" | "accepted" | "rejected" | "expired" | "completed";
        /** @description The body of accept, reject and complete (all optional). */
        HandoffStep: {
            /** @description Why (reject), or what came of it (complete): any JSON. */
            outcome?: unknown;
        };
        /** @description One search hit. */
        Hit: {
            /** @description The entry. */
            entry: components["schemas"]["Entry"];
            /** @description The key. */
            key: string;
            /**
             * Format: double
             * @description Its score: the keyword score, the cosine similarity, or the fused
             *     reciprocal-rank score.
             */
            score: number;
        };
        /** @description Who the caller is, as the server authenticated it. */
        Identity: {
            /** @description Whether the caller holds the admin token (always, with auth off). */
            admin: boolean;
            /**
             * @description The agent the caller acts as: an agent token's own agent; for the
             *     admin token (or with auth off), the agent named by `X-Agent-Id`,
             *     else `admin` (`anonymous` with auth off).
             */
            agent: string;
        };
        /**
         * @description How an entry went into a package.
         * @enum {string}
         */
        Inclusion: "included" | "compressed" | "referenced";
        /**
         * @description A lock of a context, held or free. Its fencing token only ever grows:
         *     each acquisition takes the next one, and the token survives release.
         */
        Lock: {
            /**
             * Format: date-time
             * @description When the current acquisition was made.
             */
            acquired_at?: string | null;
            /** @description The context. */
            context: string;
            /**
             * Format: date-time
             * @description When the holder loses it unless refreshed.
             */
            expires_at?: string | null;
            /**
             * Format: uint64
             * @description The token of the latest acquisition.
             */
            fencing_token: number;
            /** @description The agent holding it; `None` when free. */
            holder?: string | null;
            /** @description Names this acquisition (`name:token`); `None` when free. */
            lock_id?: string | null;
            /** @description The lock's name within the context. */
            name: string;
        };
        /** @description A lock as answered to an acquisition. */
        LockAnswer: components["schemas"]["Lock"] & {
            /** @description Whether this request holds the lock now. */
            acquired: boolean;
        };
        /** @description The locks of a context. */
        LockList: {
            /** @description Every lock ever taken in the context, by name; free ones have no holder. */
            locks: components["schemas"]["Lock"][];
        };
        /** @description What one agent of a context map needs and produces. */
        MapAgent: {
            /**
             * @description What it needs: a list of names (each matches an entry by kind, tag,
             *     key or key prefix), or kinds, tags, key patterns and names.
             */
            needs?: components["schemas"]["ContextMapInput"];
            /** @description What it produces, in the same forms. */
            produces?: components["schemas"]["ContextMapInput"];
        };
        /** @description What one agent of a context's map needs and produces. */
        MapAgentView: {
            /** @description What it needs. */
            needs: components["schemas"]["ContextMap"];
            /** @description What it produces. */
            produces: components["schemas"]["ContextMap"];
        };
        /** @description The mesh settings of a context. */
        MeshSettings: {
            /**
             * Format: uint64
             * @description Half-life of the recency signal, in milliseconds.
             * @default 86400000
             */
            recency_half_life_ms: number;
            /**
             * Format: double
             * @description Entries scoring below this are left out of packages and
             *     broadcasts (0..1).
             * @default 0.25
             */
            threshold: number;
            /**
             * @description Thresholds of particular agents, instead of `threshold`.
             * @default {}
             */
            thresholds: {
                [key: string]: number;
            };
            /**
             * @default {
             *       "confidence": 0.5,
             *       "dependency": 1.5,
             *       "explicit": 3,
             *       "needs": 3,
             *       "priority": 1,
             *       "recency": 0.5,
             *       "semantic": 1.5,
             *       "text": 1.5
             *     }
             */
            weights: components["schemas"]["Weights"];
            /**
             * @description The agents of the context's workflow, in order: when one writes,
             *     the next one's package is computed ahead.
             * @default []
             */
            workflow: string[];
        };
        /** @description `POST /v1/messages`. */
        MessageRequest: {
            /** @description Agents whose inboxes receive the message (each must be registered). */
            agents?: string[];
            /** @description The message itself: any JSON. */
            body: unknown;
            context?: null | components["schemas"]["ContextId"];
            /** @description low, normal (default), high or critical. */
            priority?: components["schemas"]["Priority"];
            /** @description A free topic, e.g. `review-requested`. */
            topic?: string | null;
        } | {
            context: string;
        } | {
            agents: unknown;
        };
        /**
         * @description How a search ranks.
         * @enum {string}
         */
        Mode: "keyword" | "semantic" | "hybrid";
        /** @description `POST /v1/contexts`: a new context. */
        NewContext: {
            /** @description The new context's id. */
            id: components["schemas"]["ContextId"];
            /** @description Key patterns of the parent's entries to copy (default: all). */
            inherit?: string[];
            /** @description Key patterns never copied from the parent. */
            isolate?: string[];
            /** @description Free labels. */
            labels?: {
                [key: string]: string;
            };
            /** @description Mesh settings. */
            mesh?: components["schemas"]["MeshSettings"];
            /** @description Values that replace (or add to) what is inherited, by key. */
            override?: {
                [key: string]: Record<string, unknown>;
            };
            /**
             * @description A context to start from: the new one records it as its `parent` and
             *     copies the parent's entries that `inherit` names (all when empty),
             *     except confidential ones and those `isolate` names.
             */
            parent?: string | null;
            /** @description Conflict policy (default: reject). */
            policy?: components["schemas"]["Policy"];
            /** @description History retention (default: keep everything). */
            retention?: components["schemas"]["Retention"];
            /** @description JSON Schemas by key pattern. */
            schemas?: {
                [key: string]: Record<string, unknown>;
            };
        };
        /** @description The answer to a token rotation. */
        NewToken: {
            agent: string;
            /** @description The new bearer token; the old one no longer works. */
            token: string;
        };
        /** @description One operation of a transaction. */
        Op: {
            /**
             * Format: double
             * @description See [`EntryMeta::confidence`].
             */
            confidence?: number | null;
            /** @description See [`EntryMeta::confidential`]. */
            confidential?: boolean;
            /** @description See [`EntryMeta::depends_on`]. */
            depends_on?: string[];
            /**
             * Format: date-time
             * @description Absolute expiry; exclusive with `ttl_ms`.
             */
            expires_at?: string | null;
            /** @description The key written. */
            key: string;
            /** @description See [`EntryMeta::kind`]. */
            kind?: string | null;
            /** @enum {string} */
            op: "put";
            /** @description See [`EntryMeta::priority`]. */
            priority?: components["schemas"]["Priority"];
            /** @description See [`EntryMeta::relevance`]. */
            relevance?: {
                [key: string]: number;
            };
            /** @description See [`EntryMeta::tags`]. */
            tags?: string[];
            /**
             * Format: uint64
             * @description Time to live from the write, in milliseconds; exclusive with `expires_at`.
             */
            ttl_ms?: number | null;
            /** @description The new value (required; `null` is a value). */
            value: unknown;
            /**
             * @description A causal precondition: the version vector of the entry the write
             *     was based on (as read). The write applies when it descends from the
             *     current entry; otherwise the context's conflict policy decides.
             */
            vclock?: {
                [key: string]: number;
            } | null;
        } | ({
            /** @description A JSON Patch (RFC 6902) of the value: it applies whole or not at all. */
            json_patch?: ({
                /** @enum {unknown} */
                op: "add" | "replace" | "test";
                path: string;
                value: unknown;
            } | {
                /** @enum {unknown} */
                op: "remove";
                path: string;
            } | {
                from: string;
                /** @enum {unknown} */
                op: "move" | "copy";
                path: string;
            })[];
            /** @description The key patched. */
            key: string;
            /** @description A JSON Merge Patch (RFC 7386). */
            merge_patch?: unknown;
            /** @enum {string} */
            op: "patch";
        } & (unknown | unknown)) | {
            /** @description The key deleted. */
            key: string;
            /** @enum {string} */
            op: "delete";
        } | {
            /** @enum {string} */
            op: "delete_prefix";
            /** @description The prefix (a plain string prefix of keys). */
            prefix: string;
        } | ({
            /** @description The key read. */
            key?: string;
            /** @enum {string} */
            op: "get";
            /** @description The prefix read. */
            prefix?: string;
        } & (unknown | unknown));
        /** @description The result of one operation. */
        OpResult: {
            /** @description The entry. */
            entry: components["schemas"]["Entry"];
            /** @enum {string} */
            op: "put";
        } | {
            /** @description The entry. */
            entry: components["schemas"]["Entry"];
            /** @enum {string} */
            op: "patch";
        } | {
            /** @description Whether it existed. */
            deleted: boolean;
            /** @description The key. */
            key: string;
            /** @enum {string} */
            op: "delete";
        } | {
            /**
             * Format: uint64
             * @description Number deleted.
             */
            deleted: number;
            /** @enum {string} */
            op: "delete_prefix";
            /** @description The prefix. */
            prefix: string;
        } | {
            /** @description The entries. */
            entries: components["schemas"]["Entry"][];
            /** @enum {string} */
            op: "get";
        };
        /**
         * @description In which order a watch delivers a backlog.
         * @enum {string}
         */
        Order: "revision" | "priority";
        /**
         * @description How a stale write ended.
         * @enum {string}
         */
        Outcome: "overwritten" | "merged" | "won" | "rejected" | "pending";
        /** @description A context package for one agent. */
        Package: {
            /** @description The agent it is for. */
            agent: string;
            /** @description The token budget. */
            budget: number;
            /** @description The context. */
            context: string;
            /**
             * @description Entries relevant enough that did not fit, most relevant first: the
             *     first 100 (all with `explain`, with those below the threshold and
             *     those excluded).
             */
            dropped: components["schemas"]["Dropped"][];
            /** @description How many entries relevant enough did not fit. */
            dropped_total: number;
            /** @description The tokenizer. */
            encoding: string;
            /** @description The entries in it, most relevant first. */
            items: components["schemas"]["PackageItem"][];
            /**
             * Format: uint64
             * @description The revision it was built at.
             */
            revision: number;
            /** @description The package as prompt-ready Markdown. */
            text: string;
            /** @description Tokens of `text`, by the tokenizer (never above `budget`). */
            tokens: number;
        };
        /** @description One item of a package. */
        PackageItem: {
            explain?: null | components["schemas"]["Components"];
            /** @description The key. */
            key: string;
            /** @description Its kind. */
            kind?: string | null;
            /** @description Where to fetch it whole: `key@revision`. */
            reference: string;
            /**
             * Format: uint64
             * @description The entry's revision.
             */
            revision: number;
            /**
             * Format: double
             * @description Its relevance.
             */
            score: number;
            /** @description How it went in. */
            status: components["schemas"]["Inclusion"];
            /** @description Its part of the package text (Markdown). */
            text: string;
            /** @description Tokens of its part of the package text. */
            tokens: number;
            /** @description The value, when included whole (JSON format). */
            value?: unknown;
        };
        /** @description A patch of an entry's value: exactly one of the two forms. */
        PatchBody: {
            /** @description JSON Merge Patch (RFC 7386). */
            merge_patch: Record<string, unknown>;
        } | {
            /** @description JSON Patch (RFC 6902): an array of operations. */
            json_patch: Record<string, unknown>[];
        };
        /**
         * @description What a grant allows on a context.
         * @enum {string}
         */
        Permission: "read" | "write" | "share" | "admin";
        /** @description A context's conflict policy. */
        Policy: {
            /**
             * @description How `merge` treats arrays: `atomic` (the default: one value) or
             *     `set` (additions of both sides kept, a removal wins).
             */
            arrays?: components["schemas"]["ArrayMerge"];
            /**
             * @description How `merge` settles one field changed both ways: `reject`,
             *     `last-write-wins` or `authority`.
             */
            on_field_conflict?: string;
            /** @description Strategies per key pattern; the first match wins. */
            overrides?: components["schemas"]["PolicyOverride"][];
            /** @description Refuse blind writes (writes without a precondition). */
            require_precondition?: boolean;
            /** @description The default strategy. */
            strategy?: components["schemas"]["Strategy"];
        };
        /** @description Policy rules. */
        PolicyList: {
            policies: components["schemas"]["PolicyRule"][];
        };
        /** @description A per-key-pattern override of the context's strategy. */
        PolicyOverride: {
            arrays?: null | components["schemas"]["ArrayMerge"];
            /** @description Field-conflict rule for `merge` on those keys. */
            on_field_conflict?: string | null;
            /** @description Keys this override applies to. */
            pattern: string;
            /** @description The strategy for those keys. */
            strategy: components["schemas"]["Strategy"];
        };
        /** @description An access policy rule over context ids, agent ids and trust levels. */
        PolicyRule: {
            /** @description Agent ids it applies to, with `*` (default `*`). */
            agents?: string;
            /**
             * @description Context ids it applies to; `*` matches any run of characters
             *     (default `*`).
             */
            contexts?: string;
            /** @description Why the rule exists. */
            description?: string | null;
            /** @description Allow or deny. */
            effect: components["schemas"]["Effect"];
            /** @description The rule's id (the alphabet of context ids). */
            id: string;
            /**
             * @description Only entries whose key matches this pattern (see
             *     [`crate::ids::KeyPattern`]). A rule with `keys` or `tags` is decided
             *     entry by entry, and concerns `read` and `write` only.
             */
            keys?: string | null;
            max_trust?: null | components["schemas"]["Trust"];
            min_trust?: null | components["schemas"]["Trust"];
            /** @description The permissions it concerns (default: all). */
            permissions?: components["schemas"]["Permission"][];
            /** @description Only entries carrying at least one of these tags. */
            tags?: string[];
        };
        /**
         * @description How urgent an entry or a message is.
         * @enum {string}
         */
        Priority: "low" | "normal" | "high" | "critical";
        /** @description One agent's proposal to a consensus. */
        Proposal: {
            /** @description The proposing agent. */
            agent: string;
            /**
             * Format: double
             * @description How sure it is (0..1, default 1).
             */
            confidence?: number;
            /** @description What it proposes. */
            value: unknown;
        };
        /**
         * @description A write kept aside under `manual`: one sibling of the conflict (the
         *     other is the entry at `current_revision`).
         */
        Proposed: components["schemas"]["EntryMeta"] & {
            /** @description Whether the write was a deletion. */
            deleted?: boolean;
            /** @description The value written (`null` with `deleted`). */
            value: unknown;
        };
        /** @description `POST /v1/contexts/{ctx}/locks/{name}/refresh`. */
        RefreshRequest: {
            /** @description The acquisition to extend; default: the caller's. */
            lock_id?: string | null;
            /**
             * Format: uint64
             * @description The new TTL, from now (1 ms to one day).
             */
            ttl_ms: number;
        };
        /** @description How a conflict was resolved by an agent. */
        Resolution: {
            /**
             * Format: date-time
             * @description When.
             */
            at: string;
            /** @description Who resolved it. */
            by: string;
            /** @description `current`, `proposed` or `value`. */
            chose: string;
            /**
             * Format: uint64
             * @description The revision that recorded the resolution.
             */
            revision: number;
        };
        /**
         * @description `POST /v1/contexts/{ctx}/conflicts/{id}/resolve`: choose a sibling, or
         *     supply a merged value with a precondition.
         */
        ResolveRequest: {
            /**
             * @description `current` (keep the entry as it is) or `proposed` (apply the write
             *     kept aside).
             * @enum {string}
             */
            choose?: "current" | "proposed";
            /**
             * Format: uint64
             * @description The entry revision the resolution is based on (default: the
             *     conflict's `current_revision`); a newer entry is `412`.
             */
            if_match?: number | null;
            /** @description A merged value to write instead (with the proposed metadata). */
            value?: unknown;
        } & (unknown | unknown);
        /** @description How much history a context keeps. Unset fields keep everything. */
        Retention: {
            /**
             * Format: uint64
             * @description Keep revisions committed within this many milliseconds readable.
             */
            max_age_ms?: number | null;
            /**
             * Format: uint64
             * @description Keep at least this many most recent revisions readable.
             */
            max_revisions?: number | null;
        };
        /** @description `POST .../rollback`. */
        RollbackRequest: {
            /**
             * Format: uint64
             * @description The revision whose state to restore.
             */
            to: number;
        };
        /** @description The revision a rollback committed. */
        RollbackResponse: {
            /**
             * Format: uint64
             * @description The revision restored.
             */
            restored_from: number;
            /**
             * Format: uint64
             * @description The new revision holding the restored state.
             */
            revision: number;
        };
        /** @description What a search found. */
        SearchResults: {
            /** @description Best first. */
            hits: components["schemas"]["Hit"][];
            /** @description The mode used. */
            mode: components["schemas"]["Mode"];
            /**
             * Format: uint64
             * @description The revision searched.
             */
            revision: number;
        };
        /**
         * @description How much a conflict needs attention.
         * @enum {string}
         */
        Severity: "low" | "high";
        /**
         * @description What to do with a handoff.
         * @enum {string}
         */
        StepAction: "accept" | "reject" | "complete";
        /**
         * @description What happens when a write's precondition is stale (docs/conflicts.md).
         * @enum {string}
         */
        Strategy: "reject" | "last-write-wins" | "merge" | "authority" | "manual";
        /** @description A page of a stream (an inbox, the agents feed). */
        StreamPage: {
            /**
             * @description The items, each with its `seq`; an inbox item also names the
             *     context and revision it came from.
             */
            events: components["schemas"]["Event"][];
            /**
             * Format: uint64
             * @description Pass as `after` to read on; equals `after` when nothing is new.
             */
            next_after: number;
        };
        /** @description A task, as stored and returned. */
        Task: {
            /** @description The agent that assigned it. */
            assigned_by: string;
            /** @description The agent to do it. */
            assignee: string;
            /**
             * Format: date-time
             * @description Completion time.
             */
            completed_at?: string | null;
            /** @description The context it belongs to. */
            context: string;
            /**
             * Format: date-time
             * @description Creation time.
             */
            created_at: string;
            /** @description Its id. */
            id: string;
            /** @description What to do. */
            input?: unknown;
            /** @description What the assignee produced. */
            output?: unknown;
            /** @description Its priority. */
            priority: components["schemas"]["Priority"];
            /** @description Where it is (read from `state` too, its former name). */
            status: components["schemas"]["TaskState"];
            /** @description A short title. */
            title: string;
        };
        /** @description A page of tasks. */
        TaskList: {
            /** @description Pass as `cursor` to get the next page; null on the last page. */
            next_cursor?: string | null;
            tasks: components["schemas"]["Task"][];
        };
        /** @description A request to assign a task (`POST /v1/contexts/{ctx}/tasks`). */
        TaskRequest: {
            /** @description The agent to do it (must be registered). */
            assignee: string;
            /** @description What to do, as the client shapes it. */
            input?: unknown;
            /** @description Its priority (default normal). */
            priority?: components["schemas"]["Priority"];
            /** @description A short title. */
            title: string;
        };
        /**
         * @description Where a task is.
         * @enum {string}
         */
        TaskState: "assigned" | "completed";
        /**
         * @description How far an agent is trusted; ordered from `none` to `full`.
         * @enum {string}
         */
        Trust: "none" | "low" | "medium" | "high" | "full";
        /** @description `POST /v1/contexts/{ctx}/txn`. */
        TxnRequest: {
            /** @description Comparisons; all must hold for `success` to run. */
            compare?: components["schemas"]["Compare"][];
            /** @description Operations applied otherwise. */
            failure?: components["schemas"]["Op"][];
            fence?: null | components["schemas"]["Fence"];
            /** @description Operations applied when every comparison holds. */
            success?: components["schemas"]["Op"][];
        };
        /** @description The answer to a transaction. */
        TxnResponse: {
            /** @description Stale writes and how the policy settled them. */
            conflicts?: components["schemas"]["ConflictReport"][];
            /** @description One result per operation of the branch that ran. */
            results: components["schemas"]["OpResult"][];
            /**
             * Format: uint64
             * @description The revision the transaction committed, or the revision it read at
             *     when it changed nothing.
             */
            revision: number;
            /**
             * @description Whether `success` ran: every comparison held, or the context's
             *     policy settled the stale ones (see `conflicts`).
             */
            succeeded: boolean;
        };
        /**
         * @description How much each signal counts in an entry's relevance. A signal that does
         *     not apply (no explicit relevance for the agent, no objective, no
         *     embedding model) is left out of the weighted mean.
         */
        Weights: {
            /**
             * Format: double
             * @description Its `confidence` (0.5 when unset).
             * @default 0.5
             */
            confidence: number;
            /**
             * Format: double
             * @description Entries that the agent's needed entries depend on (`depends_on`).
             * @default 1.5
             */
            dependency: number;
            /**
             * Format: double
             * @description The entry's `relevance[agent]`.
             * @default 3
             */
            explicit: number;
            /**
             * Format: double
             * @description A match of its kind, tags or key with the agent's `needs`.
             * @default 3
             */
            needs: number;
            /**
             * Format: double
             * @description Its `priority`.
             * @default 1
             */
            priority: number;
            /**
             * Format: double
             * @description How recently it changed (half-life `recency_half_life_ms`).
             * @default 0.5
             */
            recency: number;
            /**
             * Format: double
             * @description Semantic similarity to the objective (with an embedding model).
             * @default 1.5
             */
            semantic: number;
            /**
             * Format: double
             * @description Keyword similarity of its text to the agent's `objective`.
             * @default 1.5
             */
            text: number;
        };
    };
    responses: {
        /** @description Invalid input: a parameter, header or body of the wrong shape (`details.field` names it). */
        BadRequest: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description `fenced`: the write's `X-Fencing-Token` is older than the lock's newest token. */
        Fenced: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The caller may not do this (or `X-Agent-Id` names another agent than its token's). */
        Forbidden: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description An internal error; the server log has the details. */
        Internal: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The context, entry or other resource named does not exist. */
        NotFound: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The agent is over its request rate, or has too many streams open: retry after `Retry-After` seconds. */
        RateLimited: {
            headers: {
                /** @description Seconds to wait before retrying. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The server's disk is full; the write changed nothing: retry once space is freed. */
        StorageFull: {
            headers: {
                /** @description Seconds to wait before retrying. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The body (or a value in it) is over the server's limits. */
        TooLarge: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description No bearer token, or one the server does not know. */
        Unauthenticated: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The store (or a dependency such as the embeddings endpoint) is unavailable: retry later. */
        Unavailable: {
            headers: {
                /** @description Seconds to wait before retrying. */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
        /** @description The body's `Content-Type` is not one this operation takes. */
        UnsupportedMediaType: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["ErrorBody"];
            };
        };
    };
    parameters: {
        /** @description With the admin token: the agent to act as. With an agent token: that agent's own id, or absent. */
        AgentId: string;
    };
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export type operations = Record<string, never>;

/* A loopback mock of an OpenAI-compatible server (libmicrohttpd, a thread
 * per connection, in the test's own process) for the hs_client and assess
 * tests. It records every request it gets (method, path, Authorization,
 * body) so tests check the wire, not the client's own idea of it.
 *
 * POST /v1/chat/completions answers by the request's "model":
 *   "bad"     400 with an OpenAI error object (message MOCK_BAD_MESSAGE)
 *   "busy"    429 {"error":{"message":"slow down"}} every time, no Retry-After
 *   "flaky"   503 with Retry-After: 1 the first time (per mock_reset), then as echo
 *   "stall"   never answers (until mock_stop, at most 10 s)
 *   "long"    a stream that never ends: one delta "x" every 5 ms
 *   "drop"    a stream that sends one delta then breaks the connection
 *   "errchunk" a stream whose second event is {"error":{"message":"model crashed"}}
 *   "slow"    as echo, MOCK_SLOW_MS later
 *   anything else: echo. The answer's content is the JSON text
 *     {"model":M,"system":<the system message or null>,"user":<the last user message>}
 *   with usage {prompt_tokens: the request body's length, completion_tokens: 5},
 *   id "mock-1", finish_reason "stop"; streamed (body "stream": true) it comes
 *   as SSE in 5 deltas of roughly equal size, the bytes written a few at a
 *   time (lines split anywhere), with a comment line and CRLF endings on one
 *   event, then a usage chunk (when stream_options.include_usage) and [DONE].
 * POST /v1/embeddings: data in reverse order with their index; input i's
 *   vector is {i, 2*i, strlen(input i)}.
 * GET /v1/models: m1, m2 and every name mock_list_model added. */
#ifndef HS_TEST_MOCK_OPENAI_H
#define HS_TEST_MOCK_OPENAI_H

#include <stdbool.h>

#define MOCK_SLOW_MS 250
#define MOCK_BAD_MESSAGE "messages[0].role: unknown role 'robot'"

/* Starts the mock on a free loopback port; returns the port (0 on failure). */
int mock_start(void);
/* Ends blocked handlers and stops the daemon. */
void mock_stop(void);
/* Forgets recorded requests, extra listed models and the flaky counter. */
void mock_reset(void);
/* GET /models lists this name too. */
void mock_list_model(const char *name);

struct mock_request {
    char method[8];
    char path[64];
    char auth[128]; /* the Authorization header, "" when absent */
    char *body;     /* malloc'd, NUL-terminated */
};
/* Copies of the requests recorded since mock_reset (free with
 * mock_requests_free); *n is their count. */
struct mock_request *mock_requests(int *n);
void mock_requests_free(struct mock_request *r, int n);
/* Requests to chat/completions that the "long" stream saw end (the client went away). */
int mock_long_ended(void);

#endif

/* libwebsockets' computed macros, which Swift cannot import. */
#ifndef GENFLOW_WEBSOCKETS_SHIMS_H
#define GENFLOW_WEBSOCKETS_SHIMS_H

#include <libwebsockets.h>

/* The headroom lws_write needs before the payload (LWS_PRE). */
size_t gf_lws_pre(void);

#endif

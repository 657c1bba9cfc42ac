#include "CWebSocketsShims.h"

size_t gf_lws_pre(void) {
    return LWS_PRE;
}

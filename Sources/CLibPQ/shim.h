#ifndef ITAKU_CLIBPQ_SHIM_H
#define ITAKU_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>
#endif

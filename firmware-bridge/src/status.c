/* status.c: names of cmp_status_t values for logs and tests. */
#include "cmp/status.h"

const char *cmp_status_name(cmp_status_t status) {
  switch (status) {
    case CMP_OK: return "OK";
    case CMP_ERR_ARG: return "ARG";
    case CMP_ERR_ARENA: return "ARENA";
    case CMP_ERR_MODEL: return "MODEL";
    case CMP_ERR_MODEL_VERSION: return "MODEL_VERSION";
    case CMP_ERR_CRC: return "CRC";
    case CMP_ERR_NO_MODEL: return "NO_MODEL";
    case CMP_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case CMP_ERR_FRAME: return "FRAME";
    case CMP_ERR_TYPE: return "TYPE";
    case CMP_ERR_RANGE: return "RANGE";
    case CMP_ERR_STATE: return "STATE";
    case CMP_ERR_VERSION: return "VERSION";
  }
  return "UNKNOWN";
}

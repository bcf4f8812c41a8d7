/* cmp/status.h: the status every fallible firmware call returns (values are on the wire: never renumber). */
#ifndef CMP_STATUS_H
#define CMP_STATUS_H

/** Result of a fallible call; also the `status` byte of an ERROR frame (see PROTOCOL.md). */
typedef enum {
  CMP_OK = 0,
  CMP_ERR_ARG = 1,         /**< a null pointer, zero size or inconsistent argument */
  CMP_ERR_ARENA = 2,       /**< the caller's arena is too small; detail = bytes needed */
  CMP_ERR_MODEL = 3,       /**< the model blob is malformed (bad magic, offsets, shapes) */
  CMP_ERR_MODEL_VERSION = 4, /**< the model blob has a format version this firmware does not read */
  CMP_ERR_CRC = 5,         /**< a frame or model failed its CRC-32: resend it */
  CMP_ERR_NO_MODEL = 6,    /**< inference asked before a model was uploaded */
  CMP_ERR_UNSUPPORTED = 7, /**< a reserved message type or a layer kind this firmware lacks */
  CMP_ERR_FRAME = 8,       /**< COBS decoding failed or the frame is too short or too long */
  CMP_ERR_TYPE = 9,        /**< unknown message type */
  CMP_ERR_RANGE = 10,      /**< an offset or length outside the announced size */
  CMP_ERR_STATE = 11,      /**< a message out of order (a chunk before UPLOAD_BEGIN, ...) */
  CMP_ERR_VERSION = 12     /**< a frame of a protocol version this firmware does not speak */
} cmp_status_t;

/** Short upper-case name of a status, e.g. "CRC". */
const char *cmp_status_name(cmp_status_t status);

#endif /* CMP_STATUS_H */

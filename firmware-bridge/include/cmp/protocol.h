/* cmp/protocol.h: constants of the serial protocol, version 1 (PROTOCOL.md is the normative text). */
#ifndef CMP_PROTOCOL_H
#define CMP_PROTOCOL_H

/** Protocol version: byte 0 of every frame body. */
#define CMP_PROTOCOL_VERSION 1u
/** Firmware version reported in CAPS. */
#define CMP_FIRMWARE_MAJOR 0u
#define CMP_FIRMWARE_MINOR 1u
#define CMP_FIRMWARE_PATCH 0u

/** Frame body: version u8, type u8, seq u16 LE, payload, CRC-32 u32 LE of everything before it. */
#define CMP_FRAME_HEADER_BYTES 4u
#define CMP_FRAME_CRC_BYTES 4u
/** Largest payload either side sends or accepts. */
#define CMP_MAX_PAYLOAD 1024u

/** Message types (PROTOCOL.md, "Messages"). Host to device requests, device to host responses. */
typedef enum {
  CMP_MSG_HELLO = 0x01,        /**< host: probe; answered with CAPS */
  CMP_MSG_CAPS = 0x02,         /**< device: versions, arena, clock, features */
  CMP_MSG_UPLOAD_BEGIN = 0x10, /**< host: total bytes u32, CRC-32 u32 of the whole model */
  CMP_MSG_UPLOAD_CHUNK = 0x11, /**< host: offset u32, bytes */
  CMP_MSG_UPLOAD_END = 0x12,   /**< host: verify and load; answered with MODEL_INFO */
  CMP_MSG_MODEL_INFO = 0x13,   /**< device: CRC, sizes, arena use */
  CMP_MSG_INFER = 0x20,        /**< host: raw input values (f32 or u8 pixels), chunked by offset */
  CMP_MSG_RESULT = 0x21,       /**< device: label, exit, entropy, cycles, optional logits */
  CMP_MSG_INFER_MASKED = 0x22, /**< reserved: the compact frame of selected inputs (input-selection codec) */
  CMP_MSG_HANDOFF = 0x23,      /**< device: no exit confident; last exit's entropy, cycles, the cmp-select/1 frame */
  CMP_MSG_PROFILE_GET = 0x30,  /**< host: flags u8 (bit 0: reset after reading) */
  CMP_MSG_PROFILE = 0x31,      /**< device: link and inference counters, cycles per layer */
  CMP_MSG_RESET = 0x40,        /**< host: forget the model and the counters */
  CMP_MSG_ACK = 0x7E,          /**< device: acked type u8, 3 reserved, arg u32 */
  CMP_MSG_ERROR = 0x7F         /**< device: status u8, for type u8, 2 reserved, detail u32 (NAK on CRC) */
} cmp_msg_type_t;

/** INFER encodings (payload byte 0). */
#define CMP_INPUT_F32 0u /**< float32 LE values, already normalized */
#define CMP_INPUT_U8 1u  /**< uint8 pixels p: the device feeds (p / 255 - mean) / std */
/** INFER flags (payload byte 1). */
#define CMP_INFER_RUN 0x01u    /**< last chunk: run and answer RESULT (otherwise ACK) */
#define CMP_INFER_LOGITS 0x02u /**< include the logits in RESULT */
#define CMP_INFER_HANDOFF 0x04u /**< with RUN, uint8 only: run up to the last exit; HANDOFF when none is confident */
/** The INFER flags this protocol version defines; the others (bits 3-7) are reserved and refused with ERROR ARG. */
#define CMP_INFER_FLAGS (CMP_INFER_RUN | CMP_INFER_LOGITS | CMP_INFER_HANDOFF)

/** CAPS counter kinds. */
#define CMP_COUNTER_NONE 0u
#define CMP_COUNTER_SYSTICK 1u
#define CMP_COUNTER_DWT 2u
#define CMP_COUNTER_HOST 3u

/** CAPS feature bits (byte 17): this firmware sets all three. */
#define CMP_FEATURE_INPUT_MASK 0x01u
#define CMP_FEATURE_EARLY_EXIT 0x02u
#define CMP_FEATURE_HANDOFF 0x04u
/** The image holds a model compiled into flash (cmp firmware build --model), loaded at boot and after RESET. */
#define CMP_FEATURE_BUILTIN 0x08u

#endif /* CMP_PROTOCOL_H */

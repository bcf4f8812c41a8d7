/* link.c: frame checking (COBS, CRC-32), duplicate suppression by sequence number, and the message handlers. */
#include "cmp/link.h"

#include <string.h>

#include "cmp/crc32.h"

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}
static void putf32(uint8_t *p, float f) {
  uint32_t v;
  memcpy(&v, &f, 4u);
  put32(p, v);
}
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

cmp_status_t cmp_link_init(cmp_link_t *link, const cmp_link_io_t *io, uint8_t *arena, uint32_t arena_bytes) {
  if (link == NULL || io == NULL || io->write == NULL || io->counter == NULL) return CMP_ERR_ARG;
  memset(link, 0, sizeof(*link));
  link->io = *io;
  return cmp_arena_init(&link->arena, arena, arena_bytes);
}

cmp_status_t cmp_link_load_builtin(cmp_link_t *link, const uint8_t *blob, uint32_t bytes) {
  if (link == NULL || blob == NULL) return CMP_ERR_ARG;
  link->builtin = blob;
  link->builtin_bytes = bytes;
  link->model_ready = 0;
  link->model_builtin = 0;
  cmp_status_t s = cmp_runtime_load_const(&link->rt, &link->arena, blob, bytes, link->io.counter);
  if (s != CMP_OK) return s;
  link->model_ready = 1;
  link->model_builtin = 1;
  link->model_crc = link->rt.model.crc;
  link->input_received = 0u;
  return CMP_OK;
}

/** Frames `payload` as a body of `type`/`seq` and writes it: 0x00, COBS(body + CRC), 0x00. */
static void send_frame(cmp_link_t *link, uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t n,
                       uint8_t *wire, uint32_t wire_cap, uint32_t *wire_len) {
  uint8_t *b = link->body;
  b[0] = CMP_PROTOCOL_VERSION;
  b[1] = type;
  put16(b + 2, seq);
  if (payload != b + CMP_FRAME_HEADER_BYTES && n > 0u) memmove(b + CMP_FRAME_HEADER_BYTES, payload, n);
  uint32_t len = CMP_FRAME_HEADER_BYTES + n;
  put32(b + len, cmp_crc32(b, len));
  len += CMP_FRAME_CRC_BYTES;
  uint32_t encoded = 0u;
  wire[0] = 0u;
  if (cmp_cobs_encode(b, len, wire + 1, wire_cap - 2u, &encoded) != CMP_OK) return;
  wire[encoded + 1u] = 0u;
  *wire_len = encoded + 2u;
  link->io.write(wire, *wire_len);
  link->counters.bytes_tx += *wire_len;
}

/** Payload area of the response body, filled by handlers before respond(). */
static uint8_t *out_payload(cmp_link_t *link) { return link->body + CMP_FRAME_HEADER_BYTES; }

/** Sends a response and keeps it for a repeated request. */
static void respond(cmp_link_t *link, uint8_t type, uint16_t seq, uint32_t n) {
  send_frame(link, type, seq, out_payload(link), n, link->tx, sizeof(link->tx), &link->tx_len);
}

static void respond_error(cmp_link_t *link, uint16_t seq, uint8_t for_type, cmp_status_t status, uint32_t detail) {
  uint8_t *p = out_payload(link);
  p[0] = (uint8_t)status;
  p[1] = for_type;
  put16(p + 2, 0u);
  put32(p + 4, detail);
  respond(link, CMP_MSG_ERROR, seq, 8u);
}

static void respond_ack(cmp_link_t *link, uint16_t seq, uint8_t for_type, uint32_t arg) {
  uint8_t *p = out_payload(link);
  p[0] = for_type;
  p[1] = 0u;
  put16(p + 2, 0u);
  put32(p + 4, arg);
  respond(link, CMP_MSG_ACK, seq, 8u);
}

/** A NAK for a frame that failed COBS or CRC: not cached (the request was never understood). */
static void send_nak(cmp_link_t *link, uint16_t seq_hint, cmp_status_t status) {
  uint8_t payload[8];
  uint8_t wire[32];
  uint32_t wire_len = 0u;
  payload[0] = (uint8_t)status;
  payload[1] = 0u;
  put16(payload + 2, 0u);
  put32(payload + 4, 0u);
  link->counters.frames_bad++;
  send_frame(link, CMP_MSG_ERROR, seq_hint, payload, 8u, wire, sizeof(wire), &wire_len);
}

static void handle_hello(cmp_link_t *link, uint16_t seq) {
  uint8_t *p = out_payload(link);
  memset(p, 0, 28u);
  p[0] = CMP_PROTOCOL_VERSION;
  p[1] = CMP_FIRMWARE_MAJOR;
  p[2] = CMP_FIRMWARE_MINOR;
  p[3] = CMP_FIRMWARE_PATCH;
  put32(p + 4, link->arena.size);
  put32(p + 8, link->io.counter_hz);
  put16(p + 12, CMP_MAX_PAYLOAD);
  put16(p + 14, CMP_MODEL_FORMAT_VERSION); /* the highest it reads */
  p[16] = link->io.counter_kind;
  p[17] = CMP_FEATURE_INPUT_MASK | CMP_FEATURE_EARLY_EXIT | CMP_FEATURE_HANDOFF;
  if (link->builtin != NULL) p[17] |= CMP_FEATURE_BUILTIN;
  p[18] = link->model_ready ? (link->model_builtin ? 2u : 1u) : 0u; /* 2: the built-in model, read from flash */
  p[19] = (uint8_t)CMP_MAX_LAYERS;
  put32(p + 20, link->model_ready ? link->model_crc : 0u);
  put32(p + 24, link->model_ready ? link->rt.model.blob_bytes : 0u);
  uint32_t name_len = (uint32_t)strlen(link->io.board);
  if (name_len > 64u) name_len = 64u;
  p[28] = (uint8_t)name_len;
  memcpy(p + 29, link->io.board, name_len);
  put32(p + 29u + name_len, link->model_ready ? cmp_runtime_required_bytes(&link->rt) : 0u); /* arena used */
  respond(link, CMP_MSG_CAPS, seq, 33u + name_len);
}

static void handle_upload_begin(cmp_link_t *link, uint16_t seq, const uint8_t *p, uint32_t n) {
  if (n != 8u) {
    respond_error(link, seq, CMP_MSG_UPLOAD_BEGIN, CMP_ERR_FRAME, n);
    return;
  }
  uint32_t total = get32(p);
  if (total > link->arena.size) {
    respond_error(link, seq, CMP_MSG_UPLOAD_BEGIN, CMP_ERR_ARENA, link->arena.size);
    return;
  }
  if (total < CMP_MODEL_HEADER_BYTES + 4u || (total & 3u) != 0u) {
    respond_error(link, seq, CMP_MSG_UPLOAD_BEGIN, CMP_ERR_RANGE, total);
    return;
  }
  link->model_ready = 0; /* the upload overwrites the old model (or a built-in model's workspace) in place */
  link->model_builtin = 0;
  link->uploading = 1;
  link->upload_total = total;
  link->upload_crc = get32(p + 4);
  respond_ack(link, seq, CMP_MSG_UPLOAD_BEGIN, total);
}

static void handle_upload_chunk(cmp_link_t *link, uint16_t seq, const uint8_t *p, uint32_t n) {
  if (!link->uploading) {
    respond_error(link, seq, CMP_MSG_UPLOAD_CHUNK, CMP_ERR_STATE, 0u);
    return;
  }
  if (n < 4u) {
    respond_error(link, seq, CMP_MSG_UPLOAD_CHUNK, CMP_ERR_FRAME, n);
    return;
  }
  uint32_t offset = get32(p);
  uint32_t len = n - 4u;
  if (offset > link->upload_total || len > link->upload_total - offset) {
    respond_error(link, seq, CMP_MSG_UPLOAD_CHUNK, CMP_ERR_RANGE, offset);
    return;
  }
  memcpy(link->arena.base + offset, p + 4, len);
  respond_ack(link, seq, CMP_MSG_UPLOAD_CHUNK, offset + len);
}

static void handle_upload_end(cmp_link_t *link, uint16_t seq) {
  if (!link->uploading) {
    respond_error(link, seq, CMP_MSG_UPLOAD_END, CMP_ERR_STATE, 0u);
    return;
  }
  link->uploading = 0;
  /* The CRC of the contents, which the trailer holds: a CRC over data and its own CRC is the same constant for every
   * blob, so it could not tell models apart. */
  uint32_t crc = cmp_crc32(link->arena.base, link->upload_total - 4u);
  if (crc != link->upload_crc) {
    respond_error(link, seq, CMP_MSG_UPLOAD_END, CMP_ERR_CRC, crc);
    return;
  }
  cmp_status_t s = cmp_runtime_load(&link->rt, &link->arena, link->upload_total, link->io.counter);
  if (s != CMP_OK) {
    uint32_t detail = s == CMP_ERR_ARENA ? cmp_runtime_required_bytes(&link->rt) : 0u;
    respond_error(link, seq, CMP_MSG_UPLOAD_END, s, detail);
    return;
  }
  link->model_ready = 1;
  link->input_received = 0u;
  link->model_crc = crc;
  const cmp_model_t *m = &link->rt.model;
  uint8_t *p = out_payload(link);
  put32(p, crc);
  put32(p + 4, m->blob_bytes);
  put16(p + 8, m->layer_count);
  put16(p + 10, m->classes);
  put32(p + 12, cmp_shape_count(m->input));
  put32(p + 16, cmp_runtime_required_bytes(&link->rt));
  put32(p + 20, link->arena.size);
  respond(link, CMP_MSG_MODEL_INFO, seq, 24u);
}

static void handle_infer(cmp_link_t *link, uint16_t seq, const uint8_t *p, uint32_t n) {
  if (!link->model_ready) {
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_NO_MODEL, 0u);
    return;
  }
  if (n < 8u) {
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_FRAME, n);
    return;
  }
  uint32_t encoding = p[0];
  uint32_t flags = p[1];
  uint32_t offset = get32(p + 4);
  uint32_t bytes = n - 8u;
  uint32_t size = encoding == CMP_INPUT_F32 ? 4u : 1u;
  if (encoding > CMP_INPUT_U8 || bytes % size != 0u) {
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_ARG, encoding);
    return;
  }
  if ((flags & ~CMP_INFER_FLAGS) != 0u) { /* reserved bits: a later protocol's meaning, not ours to guess */
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_ARG, flags);
    return;
  }
  const cmp_model_t *m = &link->rt.model;
  uint32_t count = bytes / size;
  uint32_t inputs = cmp_shape_count(m->input);
  if (offset > inputs || count > inputs - offset) {
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_RANGE, inputs);
    return;
  }
  if (offset == 0u) { /* a new input starts at element 0 */
    link->input_f32 = 0;
    link->input_received = 0u;
  }
  if (offset != link->input_received) { /* chunks come in order: a gap would run on what an older input left */
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_STATE, link->input_received);
    return;
  }
  int run = (flags & CMP_INFER_RUN) != 0u;
  int handoff = run && (flags & CMP_INFER_HANDOFF) != 0u;
  if (handoff) {
    /* the hand-off frame carries the received pixels: every chunk of this input must be uint8 */
    if (encoding != CMP_INPUT_U8 || link->input_f32) {
      respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_UNSUPPORTED, encoding);
      return;
    }
    uint32_t need = 12u + cmp_runtime_handoff_bytes(&link->rt);
    if (need > CMP_MAX_PAYLOAD) {
      respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_RANGE, need);
      return;
    }
  }
  if (encoding == CMP_INPUT_F32) {
    memcpy(cmp_runtime_input(&link->rt) + offset, p + 8, bytes); /* both ends are little-endian IEEE 754 */
    link->input_f32 = 1;
  } else {
    cmp_status_t w = cmp_runtime_write_pixels(&link->rt, offset, p + 8, count);
    if (w != CMP_OK) {
      respond_error(link, seq, CMP_MSG_INFER, w, 0u);
      return;
    }
  }
  link->input_received = offset + count;
  if (!run) {
    respond_ack(link, seq, CMP_MSG_INFER, offset + count);
    return;
  }
  if (link->input_received != inputs) { /* RUN before every input arrived would answer from a stale buffer */
    respond_error(link, seq, CMP_MSG_INFER, CMP_ERR_STATE, link->input_received);
    return;
  }
  link->input_f32 = 0;
  link->input_received = 0u;
  uint8_t *o = out_payload(link);
  uint32_t frame_bytes = 0u;
  cmp_result_t r;
  cmp_status_t s = CMP_OK;
  if (handoff) {
    /* the frame first, into the answer's payload: the run overwrites the input (and act_b) */
    s = cmp_runtime_handoff_frame(&link->rt, o + 12, CMP_MAX_PAYLOAD - 12u, &frame_bytes);
    if (s == CMP_OK) s = cmp_runtime_run_handoff(&link->rt, &r);
  } else {
    s = cmp_runtime_run(&link->rt, &r);
  }
  if (s != CMP_OK) {
    respond_error(link, seq, CMP_MSG_INFER, s, 0u);
    return;
  }
  link->counters.inferences++;
  link->counters.last_cycles = r.cycles;
  link->counters.total_cycles += r.cycles;
  if (r.handed_off) {
    putf32(o, r.entropy);
    put32(o + 4, r.cycles);
    o[8] = (uint8_t)r.exits_checked;
    o[9] = 0u;
    put16(o + 10, 0u);
    respond(link, CMP_MSG_HANDOFF, seq, 12u + frame_bytes);
    return;
  }
  uint32_t logits = (flags & CMP_INFER_LOGITS) != 0u ? m->classes : 0u;
  if (logits > (CMP_MAX_PAYLOAD - 20u) / 4u) logits = (CMP_MAX_PAYLOAD - 20u) / 4u;
  put16(o, r.label);
  o[2] = (uint8_t)r.exit;
  o[3] = 0u;
  putf32(o + 4, r.entropy);
  put32(o + 8, r.cycles);
  put32(o + 12, inputs);
  put16(o + 16, logits);
  put16(o + 18, 0u);
  for (uint32_t k = 0u; k < logits; k++) putf32(o + 20u + 4u * k, r.logits[k]);
  respond(link, CMP_MSG_RESULT, seq, 20u + 4u * logits);
}

static void handle_profile(cmp_link_t *link, uint16_t seq, const uint8_t *p, uint32_t n) {
  const cmp_link_counters_t *c = &link->counters;
  uint32_t layers = link->model_ready ? link->rt.model.layer_count : 0u;
  uint8_t *o = out_payload(link);
  put32(o, c->frames_ok);
  put32(o + 4, c->frames_bad);
  put32(o + 8, c->duplicates);
  put32(o + 12, c->bytes_rx);
  put32(o + 16, c->bytes_tx);
  put32(o + 20, c->inferences);
  put32(o + 24, c->last_cycles);
  put32(o + 28, (uint32_t)c->total_cycles);
  put32(o + 32, (uint32_t)(c->total_cycles >> 32));
  put32(o + 36, link->io.counter_hz);
  put16(o + 40, layers);
  put16(o + 42, 0u);
  for (uint32_t i = 0u; i < layers; i++) put32(o + 44u + 4u * i, link->rt.layer_cycles[i]);
  respond(link, CMP_MSG_PROFILE, seq, 44u + 4u * layers);
  if (n >= 1u && (p[0] & 1u) != 0u) {
    memset(&link->counters, 0, sizeof(link->counters));
    memset(link->rt.layer_cycles, 0, sizeof(link->rt.layer_cycles));
  }
}

static void dispatch(cmp_link_t *link, uint8_t type, uint16_t seq, const uint8_t *p, uint32_t n) {
  switch (type) {
    case CMP_MSG_HELLO: handle_hello(link, seq); break;
    case CMP_MSG_UPLOAD_BEGIN: handle_upload_begin(link, seq, p, n); break;
    case CMP_MSG_UPLOAD_CHUNK: handle_upload_chunk(link, seq, p, n); break;
    case CMP_MSG_UPLOAD_END: handle_upload_end(link, seq); break;
    case CMP_MSG_INFER: handle_infer(link, seq, p, n); break;
    case CMP_MSG_PROFILE_GET: handle_profile(link, seq, p, n); break;
    case CMP_MSG_RESET:
      link->model_ready = 0;
      link->uploading = 0;
      link->input_f32 = 0;
      link->input_received = 0u;
      memset(&link->counters, 0, sizeof(link->counters));
      if (link->builtin != NULL) (void)cmp_link_load_builtin(link, link->builtin, link->builtin_bytes);
      respond_ack(link, seq, CMP_MSG_RESET, 0u);
      break;
    case CMP_MSG_INFER_MASKED: /* reserved: the compact frame of selected inputs */
    case CMP_MSG_HANDOFF:      /* an answer, never a request */
      respond_error(link, seq, type, CMP_ERR_UNSUPPORTED, 0u); break;
    default: respond_error(link, seq, type, CMP_ERR_TYPE, type); break;
  }
}

/** Checks and dispatches the frame in rx[0, rx_len). */
static void complete_frame(cmp_link_t *link) {
  uint32_t n = 0u;
  uint8_t *f = link->rx;
  if (link->rx_overflow || cmp_cobs_decode(f, link->rx_len, f, sizeof(link->rx), &n) != CMP_OK ||
      n < CMP_FRAME_HEADER_BYTES + CMP_FRAME_CRC_BYTES) {
    send_nak(link, 0xFFFFu, CMP_ERR_FRAME);
    return;
  }
  uint16_t seq = (uint16_t)get16(f + 2);
  uint32_t body = n - CMP_FRAME_CRC_BYTES;
  if (cmp_crc32(f, body) != get32(f + body)) {
    send_nak(link, seq, CMP_ERR_CRC); /* seq is only a hint: it may be the corrupted byte */
    return;
  }
  link->counters.frames_ok++;
  uint8_t type = f[1];
  if (f[0] != CMP_PROTOCOL_VERSION) {
    respond_error(link, seq, type, CMP_ERR_VERSION, CMP_PROTOCOL_VERSION);
    return;
  }
  if (type != CMP_MSG_HELLO && link->has_last && seq == link->last_seq && type == link->last_type) {
    link->counters.duplicates++; /* our answer was lost or corrupted: send it again, do not redo the work */
    link->io.write(link->tx, link->tx_len);
    link->counters.bytes_tx += link->tx_len;
    return;
  }
  /* the payload is copied into body by the handlers' respond(); read it from rx, which they do not touch */
  dispatch(link, type, seq, f + CMP_FRAME_HEADER_BYTES, body - CMP_FRAME_HEADER_BYTES);
  link->has_last = 1;
  link->last_seq = seq;
  link->last_type = type;
}

void cmp_link_feed(cmp_link_t *link, uint8_t byte) {
  link->counters.bytes_rx++;
  if (byte != 0u) {
    if (link->rx_len < sizeof(link->rx)) {
      link->rx[link->rx_len++] = byte;
    } else {
      link->rx_overflow = 1; /* drop the rest until the next delimiter */
    }
    return;
  }
  if (link->rx_len > 0u || link->rx_overflow) complete_frame(link);
  link->rx_len = 0u;
  link->rx_overflow = 0;
}

// The per-packet work of forwarding, out of JavaScript: for one forwarded packet and all the
// viewers of its track in one call, write each viewer's RTP header (SSRC, payload type, sequence,
// timestamp, header-extension block under the viewer's ids) into a reused buffer, SRTP-protect it
// with that viewer's context (RFC 3711 AES_CM_128_HMAC_SHA1_80, RFC 7714 AEAD_AES_128_GCM) and
// send the batch with sendmmsg(2). The bytes are those of src/sfu/srtp.ts and src/sfu/outbound.ts
// (test/sfu/native.test.ts holds them to werift's encrypt). werift keeps ICE, DTLS and RTCP.
//
// Node-API only (ABI-stable across Node versions); OpenSSL is Node's own, whose symbols Node
// exports to addons. Every argument from JavaScript is checked: a wrong one throws, never crashes.
// Sockets are dup(2)licated on add, so a socket JavaScript closes (or a descriptor number the
// kernel hands out again) is never written to by mistake; the duplicate is closed on remove.
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <node_api.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

namespace {

constexpr uint32_t PROFILE_AES_CM_128_HMAC_SHA1_80 = 0x0001;
constexpr uint32_t PROFILE_AEAD_AES_128_GCM = 0x0007;
constexpr size_t HEADER = 12;
/** Stored extension elements per packet (src/sfu/extensions.ts STORED_EXTENSION_BYTES). */
constexpr size_t STORED_EXTENSION_BYTES = 48;
/** Largest block written from them (EXTENSION_BLOCK_BYTES). */
constexpr size_t EXTENSION_BLOCK_BYTES = 4 + STORED_EXTENSION_BYTES + 3;
/** Largest payload taken: a UDP datagram's, less the headers. */
constexpr size_t MAX_PAYLOAD = 65000;
constexpr size_t MAX_TAG = 16;
constexpr size_t MAX_IDS = 16;
/** Bytes reserved per packet in the batch buffer beyond the payload. */
constexpr size_t OVERHEAD = HEADER + EXTENSION_BLOCK_BYTES + 2 + MAX_TAG;

inline void put16(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
inline bool isNewer(uint32_t a, uint32_t b) { return a != b && ((a - b) & 0xffff) < 0x8000; }

/** One direction's SRTP context: keys set once, per-SSRC rollover counters. */
class Srtp {
 public:
  ~Srtp() {
    if (cipher_) EVP_CIPHER_CTX_free(cipher_);
  }

  /** Null on success, else what is wrong with the keys. */
  const char* init(uint32_t profile, const uint8_t* key, size_t keyLen, const uint8_t* salt, size_t saltLen, const uint8_t* auth,
                   size_t authLen) {
    if (profile != PROFILE_AES_CM_128_HMAC_SHA1_80 && profile != PROFILE_AEAD_AES_128_GCM) return "SRTP profile is not supported";
    gcm_ = profile == PROFILE_AEAD_AES_128_GCM;
    if (keyLen != 16) return "SRTP session key must be 16 bytes";
    // werift derives 14 salt bytes for both profiles; GCM's IV takes the first 12 (RFC 7714 §8.1).
    if (gcm_ ? (saltLen != 12 && saltLen != 14) : saltLen != 14) return gcm_ ? "SRTP session salt must be 12 or 14 bytes" : "SRTP session salt must be 14 bytes";
    if (!gcm_ && (auth == nullptr || authLen != 20)) return "SRTP authentication key must be 20 bytes";
    memcpy(salt_, salt, gcm_ ? 12 : 14);
    cipher_ = EVP_CIPHER_CTX_new();
    if (!cipher_) return "out of memory";
    if (EVP_EncryptInit_ex(cipher_, gcm_ ? EVP_aes_128_gcm() : EVP_aes_128_ctr(), nullptr, key, nullptr) != 1) return "cipher setup failed";
    if (!gcm_) {
      // HMAC (RFC 2104) with the key's inner and outer SHA-1 states computed once: a packet's tag
      // then costs two struct copies and the hashing, not an HMAC context set up again.
      uint8_t ipad[64], opad[64];
      memset(ipad, 0x36, sizeof ipad);
      memset(opad, 0x5c, sizeof opad);
      for (size_t i = 0; i < authLen; i++) {
        ipad[i] ^= auth[i];
        opad[i] ^= auth[i];
      }
      if (SHA1_Init(&inner_) != 1 || SHA1_Update(&inner_, ipad, 64) != 1) return "HMAC setup failed";
      if (SHA1_Init(&outer_) != 1 || SHA1_Update(&outer_, opad, 64) != 1) return "HMAC setup failed";
    }
    return nullptr;
  }

  size_t tagLength() const { return gcm_ ? 16 : 10; }

  /**
   * Protects in place: out[0..header) is the RTP header, the plaintext payload is `a` then `b`
   * (an RTX OSN and the original payload), written encrypted after the header, the tag after it.
   * Returns the packet's length, 0 if OpenSSL failed.
   */
  size_t protect(uint8_t* out, size_t header, const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen, uint32_t ssrc, uint32_t seq) {
    uint32_t roc = rocFor(ssrc, seq);
    uint8_t iv[16];
    int n = 0;
    size_t body = aLen + bLen;
    if (gcm_) {
      // RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt.
      iv[0] = iv[1] = 0;
      put32(iv + 2, ssrc);
      put32(iv + 6, roc);
      put16(iv + 10, seq);
      for (int i = 0; i < 12; i++) iv[i] ^= salt_[i];
      if (EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, iv) != 1) return 0;
      if (EVP_EncryptUpdate(cipher_, nullptr, &n, out, int(header)) != 1) return 0;
      if (aLen && EVP_EncryptUpdate(cipher_, out + header, &n, a, int(aLen)) != 1) return 0;
      if (bLen && EVP_EncryptUpdate(cipher_, out + header + aLen, &n, b, int(bLen)) != 1) return 0;
      if (EVP_EncryptFinal_ex(cipher_, out + header + body, &n) != 1) return 0;
      if (EVP_CIPHER_CTX_ctrl(cipher_, EVP_CTRL_GCM_GET_TAG, 16, out + header + body) != 1) return 0;
      return header + body + 16;
    }
    // RFC 3711 §4.1.1: IV = (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16).
    memset(iv, 0, sizeof iv);
    put32(iv + 4, ssrc);
    put32(iv + 8, roc);
    put16(iv + 12, seq);
    for (int i = 0; i < 14; i++) iv[i] ^= salt_[i];
    if (EVP_EncryptInit_ex(cipher_, nullptr, nullptr, nullptr, iv) != 1) return 0;
    if (aLen && EVP_EncryptUpdate(cipher_, out + header, &n, a, int(aLen)) != 1) return 0;
    if (bLen && EVP_EncryptUpdate(cipher_, out + header + aLen, &n, b, int(bLen)) != 1) return 0;
    // RFC 3711 §4.2: the tag covers the packet and the ROC, cut to 80 bits.
    uint8_t rocBytes[4];
    put32(rocBytes, roc);
    uint8_t inner[SHA_DIGEST_LENGTH], mac[SHA_DIGEST_LENGTH];
    SHA_CTX c = inner_;
    if (SHA1_Update(&c, out, header + body) != 1 || SHA1_Update(&c, rocBytes, 4) != 1 || SHA1_Final(inner, &c) != 1) return 0;
    c = outer_;
    if (SHA1_Update(&c, inner, sizeof inner) != 1 || SHA1_Final(mac, &c) != 1) return 0;
    memcpy(out + header + body, mac, 10);
    return header + body + 10;
  }

 private:
  struct Stream {
    uint32_t ssrc;
    uint32_t roc;
    uint32_t highest;
  };

  /** The sender's rollover counter (RFC 3711 §3.3.1), as srtp.ts rocFor counts it. */
  uint32_t rocFor(uint32_t ssrc, uint32_t seq) {
    Stream* s = nullptr;
    for (auto& x : streams_)
      if (x.ssrc == ssrc) s = &x;
    if (!s) {
      streams_.push_back({ssrc, 0, seq});
      return 0;
    }
    if (isNewer(seq, s->highest)) {
      if (seq < s->highest) s->roc++;
      s->highest = seq;
      return s->roc;
    }
    return seq > s->highest && s->roc > 0 ? s->roc - 1 : s->roc;
  }

  bool gcm_ = false;
  EVP_CIPHER_CTX* cipher_ = nullptr;
  SHA_CTX inner_{};
  SHA_CTX outer_{};
  uint8_t salt_[14] = {};
  std::vector<Stream> streams_;
};

/** One viewer's track: where it goes, what its header says, its SRTP context. */
struct Output {
  bool used = false;
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t addrLen = 0;
  uint32_t ssrc = 0;
  uint32_t payloadType = 0;
  bool rtx = false;
  uint32_t rtxSsrc = 0;
  uint32_t rtxPayloadType = 0;
  uint32_t rtxSequence = 0;
  uint8_t ids[MAX_IDS] = {};
  size_t idCount = 0;
  std::unique_ptr<Srtp> srtp;

  void release() {
    if (fd >= 0) close(fd);
    fd = -1;
    srtp.reset();
    used = false;
  }
};

/** The outputs of one track in this process, and the reused buffers a batch is built in. */
struct Group {
  std::vector<Output> outputs;
  std::vector<uint8_t> buffer;
  std::vector<mmsghdr> messages;
  std::vector<iovec> iovecs;
  std::vector<int> fds;
  double sent = 0;
  double dropped = 0;
  bool closed = false;

  ~Group() { closeAll(); }
  void closeAll() {
    for (auto& o : outputs) o.release();
    outputs.clear();
    closed = true;
  }
};

// ---- argument checks ------------------------------------------------------------------------

napi_value fail(napi_env env, const char* message, bool range = false) {
  if (range)
    napi_throw_range_error(env, nullptr, message);
  else
    napi_throw_type_error(env, nullptr, message);
  return nullptr;
}

/** An integer number in [min, max]; throws otherwise. */
bool getInt(napi_env env, napi_value v, double min, double max, double* out, const char* what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    fail(env, what);
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!std::isfinite(d) || d != std::floor(d) || d < min || d > max) {
    fail(env, what, true);
    return false;
  }
  *out = d;
  return true;
}

bool getU32(napi_env env, napi_value v, uint32_t max, uint32_t* out, const char* what) {
  double d;
  if (!getInt(env, v, 0, max, &d, what)) return false;
  *out = uint32_t(d);
  return true;
}

bool getBool(napi_env env, napi_value v, bool* out, const char* what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) {
    fail(env, what);
    return false;
  }
  napi_get_value_bool(env, v, out);
  return true;
}

/** A Uint8Array (Buffers are); `orNull` lets null or undefined through as no bytes. */
bool getBytes(napi_env env, napi_value v, const uint8_t** data, size_t* len, const char* what, bool orNull = false) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (orNull && (t == napi_null || t == napi_undefined)) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) {
    fail(env, what);
    return false;
  }
  napi_typedarray_type type;
  void* p = nullptr;
  size_t length = 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &p, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    fail(env, what);
    return false;
  }
  static const uint8_t empty = 0;
  *data = p ? static_cast<const uint8_t*>(p) : &empty;
  *len = length;
  return true;
}

/** The Group behind `this`, if still open. */
Group* groupOf(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(env, self, &p) != napi_ok || !p) {
    fail(env, "not a native forwarding group");
    return nullptr;
  }
  auto* g = static_cast<Group*>(p);
  if (g->closed) {
    napi_throw_error(env, "ERR_GROUP_CLOSED", "the forwarding group is closed");
    return nullptr;
  }
  return g;
}

Output* outputOf(napi_env env, Group* g, napi_value v) {
  uint32_t slot;
  if (!getU32(env, v, 0x7fffffff, &slot, "output slot must be a non-negative integer")) return nullptr;
  if (slot >= g->outputs.size() || !g->outputs[slot].used) {
    fail(env, "no such output (removed, or never added)", true);
    return nullptr;
  }
  return &g->outputs[slot];
}

/** A duplicate of a UDP socket's descriptor; -1 with an exception pending otherwise. */
int adoptSocket(napi_env env, napi_value v) {
  double fd;
  if (!getInt(env, v, 0, 0x7fffffff, &fd, "socket descriptor must be a non-negative integer")) return -1;
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(int(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    napi_throw_error(env, "ERR_SOCKET", errno == EBADF ? "socket descriptor is closed" : "not a socket");
    return -1;
  }
  if (type != SOCK_DGRAM) {
    napi_throw_error(env, "ERR_SOCKET", "not a UDP socket");
    return -1;
  }
  int copy = fcntl(int(fd), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    napi_throw_error(env, "ERR_SOCKET", "could not duplicate the socket descriptor");
    return -1;
  }
  return copy;
}

/** The destination for a socket of the descriptor's family (IPv4 to an IPv6 socket: mapped). */
bool getAddress(napi_env env, int fd, napi_value addressValue, napi_value portValue, sockaddr_storage* out, socklen_t* outLen) {
  char address[INET6_ADDRSTRLEN + 1] = {};
  size_t n = 0;
  napi_valuetype t;
  napi_typeof(env, addressValue, &t);
  if (t != napi_string) {
    fail(env, "address must be a string");
    return false;
  }
  napi_get_value_string_utf8(env, addressValue, address, sizeof address, &n);
  uint32_t port;
  if (!getU32(env, portValue, 65535, &port, "port must be an integer in [0, 65535]")) return false;
  sockaddr_storage local{};
  socklen_t localLen = sizeof local;
  int family = AF_INET;
  if (fd >= 0 && getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLen) == 0) family = local.ss_family;
  memset(out, 0, sizeof *out);
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, address, &v4) == 1) {
    if (family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(out);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(uint16_t(port));
      a->sin6_addr.s6_addr[10] = 0xff;
      a->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
      *outLen = sizeof(sockaddr_in6);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(out);
      a->sin_family = AF_INET;
      a->sin_port = htons(uint16_t(port));
      a->sin_addr = v4;
      *outLen = sizeof(sockaddr_in);
    }
    return true;
  }
  if (inet_pton(AF_INET6, address, &v6) == 1 && family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(uint16_t(port));
    a->sin6_addr = v6;
    *outLen = sizeof(sockaddr_in6);
    return true;
  }
  napi_throw_error(env, "ERR_ADDRESS", "address is not an IP address this socket can send to");
  return false;
}

/** Stored extension elements of the packet: (index, length, data) triples. */
struct Stored {
  const uint8_t* data = nullptr;
  size_t length = 0;
};

bool getStored(napi_env env, napi_value bytes, napi_value offset, napi_value length, Stored* out) {
  const uint8_t* data;
  size_t len;
  if (!getBytes(env, bytes, &data, &len, "extensions must be a Uint8Array or null", true)) return false;
  uint32_t at, n;
  if (!getU32(env, offset, 0x7fffffff, &at, "extension offset must be a non-negative integer")) return false;
  if (!getU32(env, length, STORED_EXTENSION_BYTES, &n, "extension length must be an integer in [0, 48]")) return false;
  if (n > 0 && (data == nullptr || size_t(at) + n > len)) {
    fail(env, "extension offset and length lie outside the extension bytes", true);
    return false;
  }
  out->data = n > 0 ? data + at : nullptr;
  out->length = n;
  return true;
}

// ---- packets ----------------------------------------------------------------------------------

/** The viewer's one-byte-header extension block (extensions.ts writeExtensionBlock); 0: none. */
size_t writeExtensionBlock(const Output& o, const Stored& stored, uint8_t* out) {
  size_t n = 4;
  for (size_t p = 0; p + 2 <= stored.length;) {
    uint32_t index = stored.data[p];
    uint32_t len = stored.data[p + 1];
    if (len == 0 || len > 16 || p + 2 + len > stored.length) break;
    uint32_t id = index < o.idCount ? o.ids[index] : 0;
    if (id != 0) {
      out[n++] = uint8_t((id << 4) | (len - 1));
      memcpy(out + n, stored.data + p + 2, len);
      n += len;
    }
    p += 2 + len;
  }
  if (n == 4) return 0;
  while (n & 3) out[n++] = 0;
  out[0] = 0xbe;
  out[1] = 0xde;
  put16(out + 2, uint32_t((n - 4) >> 2));
  return n;
}

/**
 * Writes and protects one packet for `o` at `out`; a retransmission goes as RTX when the output
 * has it (OSN + payload, the RTX stream's own sequence). Returns its length, 0 if protect failed.
 */
size_t writePacket(Output& o, uint8_t* out, bool retransmission, uint32_t seq, uint32_t timestamp, bool marker, const uint8_t* payload,
                   size_t length, const Stored& stored) {
  bool rtx = retransmission && o.rtx;
  uint32_t ssrc = rtx ? o.rtxSsrc : o.ssrc;
  uint32_t sequence = seq;
  if (rtx) {
    sequence = o.rtxSequence;
    o.rtxSequence = (o.rtxSequence + 1) & 0xffff;
  }
  size_t ext = stored.length ? writeExtensionBlock(o, stored, out + HEADER) : 0;
  out[0] = ext ? 0x90 : 0x80;
  out[1] = uint8_t((marker ? 0x80 : 0) | ((rtx ? o.rtxPayloadType : o.payloadType) & 0x7f));
  put16(out + 2, sequence);
  put32(out + 4, timestamp);
  put32(out + 8, ssrc);
  uint8_t osn[2];
  put16(osn, seq);
  return rtx ? o.srtp->protect(out, HEADER + ext, osn, 2, payload, length, ssrc, sequence)
             : o.srtp->protect(out, HEADER + ext, payload, length, nullptr, 0, ssrc, sequence);
}

/** Sends messages [0, count) of the group's batch, one sendmmsg per run of the same socket. */
uint32_t sendBatch(Group* g, size_t count) {
  uint32_t sent = 0;
  for (size_t i = 0; i < count;) {
    int fd = g->fds[i];
    size_t j = i + 1;
    while (j < count && g->fds[j] == fd) j++;
    size_t at = i;
    while (at < j) {
      int r = sendmmsg(fd, &g->messages[at], unsigned(j - at), MSG_DONTWAIT);
      if (r > 0) {
        sent += unsigned(r);
        at += size_t(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      // A full send buffer (EAGAIN) or an error on this message: it is dropped, as a congested
      // link would; the rest of the run is tried after it.
      g->dropped++;
      at++;
    }
    i = j;
  }
  g->sent += sent;
  return sent;
}

void reserve(Group* g, size_t count, size_t stride) {
  if (g->buffer.size() < count * stride) g->buffer.resize(count * stride);
  if (g->messages.size() < count) {
    g->messages.resize(count);
    g->iovecs.resize(count);
    g->fds.resize(count);
  }
}

void queueMessage(Group* g, size_t k, Output& o, uint8_t* data, size_t length) {
  g->iovecs[k].iov_base = data;
  g->iovecs[k].iov_len = length;
  msghdr& h = g->messages[k].msg_hdr;
  memset(&h, 0, sizeof h);
  h.msg_name = &o.addr;
  h.msg_namelen = o.addrLen;
  h.msg_iov = &g->iovecs[k];
  h.msg_iovlen = 1;
  g->messages[k].msg_len = 0;
  g->fds[k] = o.fd;
}

// ---- the Group class --------------------------------------------------------------------------

void finalizeGroup(napi_env, void* data, void*) { delete static_cast<Group*>(data); }

napi_value New(napi_env env, napi_callback_info info) {
  napi_value self, target;
  napi_get_cb_info(env, info, nullptr, nullptr, &self, nullptr);
  napi_get_new_target(env, info, &target);
  if (!target) return fail(env, "Group must be called with new");
  auto* g = new Group();
  if (napi_wrap(env, self, g, finalizeGroup, nullptr, nullptr) != napi_ok) {
    delete g;
    return fail(env, "could not create the group");
  }
  return self;
}

/**
 * add(fd, address, port, ssrc, payloadType, rtxSsrc, rtxPayloadType, rtxSequence, extensionIds,
 *     profile, key, salt, authKey) → slot. rtxSsrc -1: no RTX. fd -1: no socket (protect only).
 */
napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value a[13];
  Group* g = groupOf(env, info, &argc, a);
  if (!g) return nullptr;
  if (argc < 13) return fail(env, "add takes 13 arguments");
  Output o;
  double rtxSsrc;
  uint32_t profile;
  const uint8_t *ids, *key, *salt, *auth;
  size_t idsLen, keyLen, saltLen, authLen;
  if (!getU32(env, a[3], 0xffffffff, &o.ssrc, "ssrc must be a 32-bit unsigned integer")) return nullptr;
  if (!getU32(env, a[4], 127, &o.payloadType, "payload type must be an integer in [0, 127]")) return nullptr;
  if (!getInt(env, a[5], -1, 0xffffffff, &rtxSsrc, "RTX ssrc must be -1 or a 32-bit unsigned integer")) return nullptr;
  if (!getU32(env, a[6], 127, &o.rtxPayloadType, "RTX payload type must be an integer in [0, 127]")) return nullptr;
  if (!getU32(env, a[7], 0xffff, &o.rtxSequence, "RTX sequence must be an integer in [0, 65535]")) return nullptr;
  if (!getBytes(env, a[8], &ids, &idsLen, "extension ids must be a Uint8Array")) return nullptr;
  if (idsLen > MAX_IDS) return fail(env, "at most 16 extension ids", true);
  if (!getU32(env, a[9], 0xffff, &profile, "profile must be an integer")) return nullptr;
  if (!getBytes(env, a[10], &key, &keyLen, "key must be a Uint8Array")) return nullptr;
  if (!getBytes(env, a[11], &salt, &saltLen, "salt must be a Uint8Array")) return nullptr;
  if (!getBytes(env, a[12], &auth, &authLen, "authentication key must be a Uint8Array or null", true)) return nullptr;
  o.rtx = rtxSsrc >= 0;
  o.rtxSsrc = o.rtx ? uint32_t(rtxSsrc) : 0;
  memcpy(o.ids, ids, idsLen);
  o.idCount = idsLen;
  o.srtp = std::make_unique<Srtp>();
  if (const char* err = o.srtp->init(profile, key, keyLen, salt, saltLen, auth, authLen)) return fail(env, err, true);
  // The socket last: nothing to undo when the checks above throw.
  napi_valuetype t;
  napi_typeof(env, a[0], &t);
  double noSocket = 0;
  if (t == napi_number) napi_get_value_double(env, a[0], &noSocket);
  if (t == napi_number && noSocket == -1) {
    if (!getAddress(env, -1, a[1], a[2], &o.addr, &o.addrLen)) return nullptr;
  } else {
    o.fd = adoptSocket(env, a[0]);
    if (o.fd < 0) return nullptr;
    if (!getAddress(env, o.fd, a[1], a[2], &o.addr, &o.addrLen)) {
      close(o.fd);
      return nullptr;
    }
  }
  o.used = true;
  size_t slot = 0;
  while (slot < g->outputs.size() && g->outputs[slot].used) slot++;
  if (slot == g->outputs.size())
    g->outputs.push_back(std::move(o));
  else
    g->outputs[slot] = std::move(o);
  napi_value out;
  napi_create_uint32(env, uint32_t(slot), &out);
  return out;
}

/** setPath(slot, fd, address, port): the viewer's nominated pair changed. */
napi_value SetPath(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4];
  Group* g = groupOf(env, info, &argc, a);
  if (!g) return nullptr;
  if (argc < 4) return fail(env, "setPath takes 4 arguments");
  Output* o = outputOf(env, g, a[0]);
  if (!o) return nullptr;
  int fd = adoptSocket(env, a[1]);
  if (fd < 0) return nullptr;
  sockaddr_storage addr;
  socklen_t len;
  if (!getAddress(env, fd, a[2], a[3], &addr, &len)) {
    close(fd);
    return nullptr;
  }
  if (o->fd >= 0) close(o->fd);
  o->fd = fd;
  o->addr = addr;
  o->addrLen = len;
  return nullptr;
}

napi_value Remove(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  Group* g = groupOf(env, info, &argc, a);
  if (!g) return nullptr;
  if (argc < 1) return fail(env, "remove takes a slot");
  Output* o = outputOf(env, g, a[0]);
  if (o) o->release();
  return nullptr;
}

/** The payload, sequence, timestamp, marker and stored extensions of a packet, from a[at..at+6]. */
struct Packet {
  const uint8_t* payload;
  size_t length;
  uint32_t seq, timestamp;
  bool marker;
  Stored stored;
};

bool getPacket(napi_env env, napi_value* a, Packet* p) {
  if (!getBytes(env, a[0], &p->payload, &p->length, "payload must be a Uint8Array")) return false;
  if (p->length > MAX_PAYLOAD) {
    fail(env, "payload is larger than a UDP datagram", true);
    return false;
  }
  if (!getU32(env, a[1], 0xffff, &p->seq, "sequence number must be an integer in [0, 65535]")) return false;
  if (!getU32(env, a[2], 0xffffffff, &p->timestamp, "timestamp must be a 32-bit unsigned integer")) return false;
  if (!getBool(env, a[3], &p->marker, "marker must be a boolean")) return false;
  return getStored(env, a[4], a[5], a[6], &p->stored);
}

/**
 * send(slots: Int32Array, count, payload, seq, timestamp, marker, extensions, extOffset, extLength)
 * → packets handed to the kernel. Every slot is checked before anything is written.
 */
napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  Group* g = groupOf(env, info, &argc, a);
  if (!g) return nullptr;
  if (argc < 9) return fail(env, "send takes 9 arguments");
  bool is = false;
  napi_is_typedarray(env, a[0], &is);
  if (!is) return fail(env, "slots must be an Int32Array");
  napi_typedarray_type type;
  size_t slotsLen = 0;
  void* slotsData = nullptr;
  napi_get_typedarray_info(env, a[0], &type, &slotsLen, &slotsData, nullptr, nullptr);
  if (type != napi_int32_array) return fail(env, "slots must be an Int32Array");
  uint32_t count;
  if (!getU32(env, a[1], 0x7fffffff, &count, "count must be a non-negative integer")) return nullptr;
  if (count > slotsLen) return fail(env, "count is larger than the slots given", true);
  Packet p;
  if (!getPacket(env, a + 2, &p)) return nullptr;
  const int32_t* slots = static_cast<const int32_t*>(slotsData);
  for (uint32_t i = 0; i < count; i++) {
    int32_t s = slots[i];
    if (s < 0 || size_t(s) >= g->outputs.size() || !g->outputs[size_t(s)].used) return fail(env, "no such output (removed, or never added)", true);
  }
  size_t stride = (OVERHEAD + p.length + 15) & ~size_t(15);
  reserve(g, count, stride);
  size_t k = 0;
  for (uint32_t i = 0; i < count; i++) {
    Output& o = g->outputs[size_t(slots[i])];
    uint8_t* out = g->buffer.data() + k * stride;
    size_t len = writePacket(o, out, false, p.seq, p.timestamp, p.marker, p.payload, p.length, p.stored);
    if (len == 0 || o.fd < 0) {
      g->dropped++;
      continue;
    }
    queueMessage(g, k++, o, out, len);
  }
  napi_value result;
  napi_create_uint32(env, sendBatch(g, k), &result);
  return result;
}

/**
 * resend(slot, payload, seq, timestamp, marker, extensions, extOffset, extLength) → whether it went
 * to the kernel: a NACKed packet again, as RTX when the output has it.
 */
napi_value Resend(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value a[8];
  Group* g = groupOf(env, info, &argc, a);
  if (!g) return nullptr;
  if (argc < 8) return fail(env, "resend takes 8 arguments");
  Output* o = outputOf(env, g, a[0]);
  if (!o) return nullptr;
  Packet p;
  if (!getPacket(env, a + 1, &p)) return nullptr;
  size_t stride = OVERHEAD + p.length;
  reserve(g, 1, stride);
  size_t len = writePacket(*o, g->buffer.data(), true, p.seq, p.timestamp, p.marker, p.payload, p.length, p.stored);
  bool ok = false;
  if (len > 0 && o->fd >= 0) {
    queueMessage(g, 0, *o, g->buffer.data(), len);
    ok = sendBatch(g, 1) == 1;
  } else {
    g->dropped++;
  }
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

/**
 * protect(slot, payload, seq, timestamp, marker, extensions, extOffset, extLength, retransmission)
 * → the packet as send or resend would put it on the wire, not sent (tests hold it to werift's).
 */
napi_value Protect(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  Group* g = groupOf(env, info, &argc, a);
  if (!g) return nullptr;
  if (argc < 9) return fail(env, "protect takes 9 arguments");
  Output* o = outputOf(env, g, a[0]);
  if (!o) return nullptr;
  Packet p;
  if (!getPacket(env, a + 1, &p)) return nullptr;
  bool retransmission;
  if (!getBool(env, a[8], &retransmission, "retransmission must be a boolean")) return nullptr;
  std::vector<uint8_t> out(OVERHEAD + p.length);
  size_t len = writePacket(*o, out.data(), retransmission, p.seq, p.timestamp, p.marker, p.payload, p.length, p.stored);
  if (len == 0) {
    napi_throw_error(env, "ERR_CRYPTO", "SRTP protect failed");
    return nullptr;
  }
  napi_value result;
  void* data = nullptr;
  if (napi_create_buffer_copy(env, len, out.data(), &data, &result) != napi_ok) return nullptr;
  return result;
}

/** stats() → { outputs, sent, dropped }: counters since the group was made. */
napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Group* g = groupOf(env, info, &argc, nullptr);
  if (!g) return nullptr;
  uint32_t outputs = 0;
  for (auto& o : g->outputs) outputs += o.used ? 1 : 0;
  napi_value result, v;
  napi_create_object(env, &result);
  napi_create_uint32(env, outputs, &v);
  napi_set_named_property(env, result, "outputs", v);
  napi_create_double(env, g->sent, &v);
  napi_set_named_property(env, result, "sent", v);
  napi_create_double(env, g->dropped, &v);
  napi_set_named_property(env, result, "dropped", v);
  return result;
}

/** close(): releases every output's socket and context; later calls throw, close again does nothing. */
napi_value Close(napi_env env, napi_callback_info info) {
  napi_value self;
  napi_get_cb_info(env, info, nullptr, nullptr, &self, nullptr);
  void* p = nullptr;
  if (napi_unwrap(env, self, &p) != napi_ok || !p) return fail(env, "not a native forwarding group");
  static_cast<Group*>(p)->closeAll();
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"add", nullptr, Add, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setPath", nullptr, SetPath, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"remove", nullptr, Remove, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resend", nullptr, Resend, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"protect", nullptr, Protect, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_value cls;
  if (napi_define_class(env, "Group", NAPI_AUTO_LENGTH, New, nullptr, sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) return nullptr;
  napi_set_named_property(env, exports, "Group", cls);
  napi_value version;
  napi_create_uint32(env, 1, &version);
  napi_set_named_property(env, exports, "version", version);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

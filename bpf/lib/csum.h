/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Checksum arithmetic in BPF: one's-complement sums with bpf_csum_diff() over 512-byte chunks
 * loaded into a per-CPU scratch buffer (bpf_loop, so any frame length works and the verifier sees
 * one chunk), and a byte-wise CRC32c for SCTP. The compat object (CSF_COMPAT, no bpf_loop) walks
 * the same chunks in global functions, which the verifier checks once each, and its CRC32c takes
 * 8 bytes a step (slicing-by-8) to stay in the verifier's budget. All 16-bit values here are "raw": the two bytes as
 * they lie in the packet, read into a __u16 in memory order, which is the order bpf_csum_diff()
 * sums in. */
#ifndef CSUMFIX_BPF_LIB_CSUM_H
#define CSUMFIX_BPF_LIB_CSUM_H

#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/crc32c_table.h"
#ifdef CSF_COMPAT
#include "lib/crc32c_table8.h"
#endif

/* CSF_CHUNK and the scratch buffer csf_scratch_map are in lib/maps.h. */
#define CSF_MAX_CHUNKS 128 /* 64 KiB */

static __always_inline __u16 csf_fold(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Keeps the compiler from proving a clamp redundant, so the verifier sees the bound. */
#define csf_barrier_var(v) asm volatile("" : "+r"(v))

struct csf_walk {
	void *ctx;
	__u32 start;
	__u32 end;
	__u64 acc; /* one's-complement accumulator (sum) or CRC state */
	__u32 err;
	__u32 zero_off; /* CRC: offset relative to start of 4 bytes read as zero; ~0 for none */
	__u32 first;    /* compat CRC: the chunk index the loop's i = 0 stands for */
};

/* Loads chunk i of [start, end) into the scratch buffer, zero-padded to a multiple of 4.
 * Returns the chunk length, 0 when done or on error (w->err set). */
static __always_inline __u32 csf_load_chunk(struct csf_walk *w, const bool xdp, __u32 i,
					    struct csf_scratch **sp)
{
	__u32 zero = 0;
	__u32 off = w->start + i * CSF_CHUNK;

	if (off >= w->end)
		return 0;
	__u32 n = w->end - off;
	if (n > CSF_CHUNK)
		n = CSF_CHUNK;
	/* n is in [1, CSF_CHUNK]; say so in a form the verifier keeps across the compiler. */
	csf_barrier_var(n);
	n = ((n - 1) & (CSF_CHUNK - 1)) + 1;
	struct csf_scratch *s = bpf_map_lookup_elem(&csf_scratch_map, &zero);
	if (!s) {
		w->err = 1;
		return 0;
	}
	__u32 last = n & ~3u;
	csf_barrier_var(last);
	if (last > CSF_CHUNK)
		return 0;
	*(__u32 *)&s->buf[last] = 0;
	if (csf_load_var(w->ctx, xdp, off, s->buf, n)) {
		w->err = 1;
		return 0;
	}
	*sp = s;
	return n;
}

static __always_inline long csf_sum_step(__u32 i, struct csf_walk *w, const bool xdp)
{
	struct csf_scratch *s = NULL;
	__u32 n = csf_load_chunk(w, xdp, i, &s);

	if (!n || !s)
		return 1;
	__u32 sz = (n + 3) & ~3u;
	csf_barrier_var(sz);
	if (sz > CSF_CHUNK || sz == 0)
		return 1;
	w->acc += (__u32)bpf_csum_diff(NULL, 0, (__be32 *)s->buf, sz, 0);
	return 0;
}

static long csf_sum_cb_tc(__u32 i, void *w) { return csf_sum_step(i, w, false); }
static long csf_sum_cb_xdp(__u32 i, void *w) { return csf_sum_step(i, w, true); }

#ifdef CSF_COMPAT
/* Global functions (non-static, __noinline): verified once, with their own stack; arguments are
 * the context and scalars, all 5.10's verifier allows. The result is the value, or CSF_G_ERR. */
#define CSF_G_ERR (1ull << 63)

#define CSF_SUM_G(name, ctx_t, cb)                                                   \
	__noinline __u64 name(ctx_t *ctx, __u32 start, __u32 end)                    \
	{                                                                            \
		struct csf_walk w = { .ctx = ctx, .start = start, .end = end };      \
		__u32 chunks = (end - start + CSF_CHUNK - 1) / CSF_CHUNK;            \
		if (end < start || chunks > CSF_MAX_CHUNKS)                          \
			return CSF_G_ERR;                                            \
		csf_loop(CSF_MAX_CHUNKS, chunks, cb, &w);                            \
		return w.err ? CSF_G_ERR : w.acc;                                    \
	}
CSF_SUM_G(csf_sum_tc_g, struct __sk_buff, csf_sum_cb_tc)
CSF_SUM_G(csf_sum_xdp_g, struct xdp_md, csf_sum_cb_xdp)
#endif

/* Unfolded one's-complement sum of frame bytes [start, end). Returns -1 on a helper failure. */
static __always_inline int csf_sum_range(void *ctx, const bool xdp, __u32 start, __u32 end,
					 __u64 *sum)
{
#ifdef CSF_COMPAT
	__u64 r = xdp ? csf_sum_xdp_g(ctx, start, end) : csf_sum_tc_g(ctx, start, end);

	if (r & CSF_G_ERR)
		return -1;
	*sum = r;
	return 0;
#else
	struct csf_walk w = { .ctx = ctx, .start = start, .end = end };
	__u32 chunks = (end - start + CSF_CHUNK - 1) / CSF_CHUNK;

	if (end < start || chunks > CSF_MAX_CHUNKS)
		return -1;
	bpf_loop(chunks, xdp ? csf_sum_cb_xdp : csf_sum_cb_tc, &w, 0);
	if (w.err)
		return -1;
	*sum = w.acc;
	return 0;
#endif
}

/* Pseudo-header sum (unfolded). */
static __always_inline __u64 csf_pseudo_sum(const struct csf_pkt *p)
{
	__u32 ph[10] = {};

	if (p->ipver == 4) {
		__builtin_memcpy(&ph[0], &p->addr[0], 4);
		__builtin_memcpy(&ph[1], &p->addr[16], 4);
		ph[2] = bpf_htonl(((__u32)p->proto << 16) | (p->pseudo_len & 0xffff));
		return (__u32)bpf_csum_diff(NULL, 0, (__be32 *)ph, 12, 0);
	}
	__builtin_memcpy(&ph[0], &p->addr[0], 16);
	__builtin_memcpy(&ph[4], &p->addr[16], 16);
	ph[8] = bpf_htonl(p->pseudo_len);
	ph[9] = bpf_htonl(p->proto);
	return (__u32)bpf_csum_diff(NULL, 0, (__be32 *)ph, 40, 0);
}

/* ---- CRC32c for SCTP ---- */
struct csf_crc_bytes {
	struct csf_scratch *s;
	__u32 crc;
};

#ifndef CSF_COMPAT
/* One byte per callback: the verifier checks the body once (a 512-step inline loop cost it
 * ~700k instructions). SCTP only, so the per-byte call is affordable. */
static long csf_crc_byte_cb(__u32 j, void *arg)
{
	struct csf_crc_bytes *b = arg;

	if (j >= CSF_CHUNK)
		return 1;
	b->crc = csf_crc32c_table[(b->crc ^ b->s->buf[j]) & 0xff] ^ (b->crc >> 8);
	return 0;
}
#endif

static __always_inline long csf_crc_step(__u32 i, struct csf_walk *w, const bool xdp)
{
	struct csf_scratch *s = NULL;
	__u32 n = csf_load_chunk(w, xdp, i, &s);

	if (!n || !s)
		return 1;
	if (i == 0) /* the CRC field (bytes 8..11 of the SCTP header) counts as zero */
		*(__u32 *)&s->buf[8] = 0;
#ifdef CSF_COMPAT
	/* 8 bytes a step (slicing-by-8, little-endian words): 64 verifier walks per chunk, not 512;
	 * then the last n % 8 bytes one at a time. */
	__u32 crc = (__u32)w->acc;
	const __u32 words = n / 8;
	for (__u32 k = 0; k < CSF_CHUNK / 8; k++) {
		if (k >= words)
			break;
		const __u32 o = (k * 8) & (CSF_CHUNK - 8);
		const __u32 lo = *(__u32 *)&s->buf[o] ^ crc;
		const __u32 hi = *(__u32 *)&s->buf[o + 4];
		crc = csf_crc32c_t8[7][lo & 0xff] ^ csf_crc32c_t8[6][(lo >> 8) & 0xff] ^
		      csf_crc32c_t8[5][(lo >> 16) & 0xff] ^ csf_crc32c_t8[4][lo >> 24] ^
		      csf_crc32c_t8[3][hi & 0xff] ^ csf_crc32c_t8[2][(hi >> 8) & 0xff] ^
		      csf_crc32c_t8[1][(hi >> 16) & 0xff] ^ csf_crc32c_t8[0][hi >> 24];
	}
	for (__u32 t = 0, j = words * 8; t < 8; t++, j++) {
		if (j >= n)
			break;
		crc = csf_crc32c_t8[0][(crc ^ s->buf[j & (CSF_CHUNK - 1)]) & 0xff] ^ (crc >> 8);
	}
	w->acc = crc;
	return 0;
#else
	struct csf_crc_bytes b = { .s = s, .crc = (__u32)w->acc };
	bpf_loop(n, csf_crc_byte_cb, &b, 0);
	w->acc = b.crc;
	return 0;
#endif
}

#ifdef CSF_COMPAT
static long csf_crc_part_cb_tc(__u32 i, void *arg)
{
	struct csf_walk *w = arg;

	return csf_crc_step(w->first + i, w, false);
}
static long csf_crc_part_cb_xdp(__u32 i, void *arg)
{
	struct csf_walk *w = arg;

	return csf_crc_step(w->first + i, w, true);
}
#else
static long csf_crc_cb_tc(__u32 i, void *w) { return csf_crc_step(i, w, false); }
static long csf_crc_cb_xdp(__u32 i, void *w) { return csf_crc_step(i, w, true); }
#endif

#ifdef CSF_COMPAT
/* CSF_CRC_PART chunks of [start, end) from chunk `first` on, continuing the CRC state `crc`; a
 * whole walk of 128 chunks is beyond the verifier's budget in one function, so the caller calls
 * this one (verified once) for each part. Returns the new state, or CSF_G_ERR. */
#define CSF_CRC_PART 4 /* 2 KiB: test-run frames (up to 3.6 KB) cross a part boundary */
#define CSF_CRC_G(name, ctx_t, cb)                                                      \
	__noinline __u64 name(ctx_t *ctx, __u32 start, __u32 end, __u32 crc, __u32 first) \
	{                                                                               \
		__u32 chunks = (end - start + CSF_CHUNK - 1) / CSF_CHUNK;                \
		if (end < start || chunks > CSF_MAX_CHUNKS || first >= CSF_MAX_CHUNKS)  \
			return CSF_G_ERR;                                               \
		if (first >= chunks)                                                    \
			return crc;                                                     \
		struct csf_walk w = { .ctx = ctx, .start = start, .end = end,           \
				      .acc = crc, .first = first };                     \
		csf_loop(CSF_CRC_PART, chunks - first, cb, &w);                         \
		return w.err ? CSF_G_ERR : (__u32)w.acc;                                \
	}
CSF_CRC_G(csf_crc_tc_g, struct __sk_buff, csf_crc_part_cb_tc)
CSF_CRC_G(csf_crc_xdp_g, struct xdp_md, csf_crc_part_cb_xdp)
#endif

static __always_inline int csf_crc32c_range(void *ctx, const bool xdp, __u32 start, __u32 end,
					    __u32 *crc)
{
	__u32 chunks = (end - start + CSF_CHUNK - 1) / CSF_CHUNK;

	if (end < start || chunks > CSF_MAX_CHUNKS)
		return -1;
#ifdef CSF_COMPAT
	__u64 r = 0xffffffff;
	for (__u32 part = 0; part < CSF_MAX_CHUNKS / CSF_CRC_PART; part++) {
		if (part * CSF_CRC_PART >= chunks)
			break;
		r = xdp ? csf_crc_xdp_g(ctx, start, end, (__u32)r, part * CSF_CRC_PART)
			: csf_crc_tc_g(ctx, start, end, (__u32)r, part * CSF_CRC_PART);
		if (r & CSF_G_ERR)
			return -1;
	}
	*crc = ~(__u32)r;
	return 0;
#else
	struct csf_walk w = { .ctx = ctx, .start = start, .end = end, .acc = 0xffffffff };

	bpf_loop(chunks, xdp ? csf_crc_cb_xdp : csf_crc_cb_tc, &w, 0);
	if (w.err)
		return -1;
	*crc = ~(__u32)w.acc;
	return 0;
#endif
}

/* IPv4 header: 1 if the header checksum is correct, 0 if wrong, -1 on error. */
static __always_inline int csf_ip4_hdr_ok(void *ctx, const bool xdp, const struct csf_pkt *p)
{
	__u32 h[15];
	__u32 n = p->ip4_ihl4;

	if (n < 20 || n > 60)
		return -1;
	csf_barrier_var(n);
	if (n > 60)
		return -1;
	if (csf_load_var(ctx, xdp, p->l3_off, h, n))
		return -1;
	return csf_fold((__u32)bpf_csum_diff(NULL, 0, (__be32 *)h, n, 0)) == 0xffff;
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing per docs/SEMANTICS.md §1. Headers are read with the load_bytes helpers, so
 * non-linear skbs and multi-buffer XDP frames parse like linear ones, and no read can go past the
 * frame: the helpers refuse. */
#ifndef CSUMFIX_BPF_LIB_PARSE_H
#define CSUMFIX_BPF_LIB_PARSE_H

#include "lib/ctx.h"
#include <bpf/bpf_endian.h>
#include "csumfix/abi.h"

#define CSF_ETH_P_IP 0x0800
#define CSF_ETH_P_IPV6 0x86dd
#define CSF_ETH_P_8021Q 0x8100
#define CSF_ETH_P_8021AD 0x88a8
#define CSF_IPPROTO_ICMP 1
#define CSF_IPPROTO_TCP 6
#define CSF_IPPROTO_UDP 17
#define CSF_IPPROTO_ICMPV6 58
#define CSF_IPPROTO_SCTP 132
#define CSF_IPPROTO_UDPLITE 136
#define CSF_MAX_VLAN 2
#define CSF_MAX_IP6_EXT 8

struct csf_pkt {
	__u32 len;        /* frame length */
	__u32 l3_off;     /* IP header */
	__u32 l4_off;     /* L4 header */
	__u32 l4_len;     /* L4 segment length (L) */
	__u32 covered;    /* bytes covered by the L4 checksum */
	__u32 pseudo_len; /* length in the pseudo-header */
	__u32 field_off;  /* checksum field */
	__u8 proto;
	__u8 ipver;      /* 4 or 6 */
	__u8 has_pseudo; /* checksum includes a pseudo-header */
	__u8 ip4_ihl4;   /* IPv4 header length in bytes (0 for IPv6) */
	__u16 sport;     /* TCP/UDP/UDP-Lite/SCTP ports, host order (0 otherwise) */
	__u16 dport;
	__u8 addr[32];   /* source at [0], destination at [16]; IPv4 uses the first 4 bytes of each */
};

/* Returns 0 when an L4 header with a checksum was found, otherwise CSF_CLASS_NA or
 * CSF_CLASS_UNPARSABLE. */
static __always_inline __u32 csf_parse_ip4(void *ctx, const bool xdp, struct csf_pkt *p, __u32 off)
{
	struct iphdr ip;

	if (p->len - off < sizeof(ip) || csf_load(ctx, xdp, off, &ip, sizeof(ip)))
		return CSF_CLASS_UNPARSABLE;
	__u32 ihl4 = ip.ihl * 4;
	__u32 tot = bpf_ntohs(ip.tot_len);
	if (ip.version != 4 || ip.ihl < 5 || ihl4 > p->len - off || tot < ihl4 || tot > p->len - off)
		return CSF_CLASS_UNPARSABLE;
	p->l3_off = off;
	p->ipver = 4;
	p->ip4_ihl4 = ihl4;
	if (bpf_ntohs(ip.frag_off) & 0x3fff) /* MF or a fragment offset */
		return CSF_CLASS_NA;
	p->proto = ip.protocol;
	p->l4_off = off + ihl4;
	p->l4_len = tot - ihl4;
	__builtin_memcpy(&p->addr[0], &ip.saddr, 4);
	__builtin_memcpy(&p->addr[16], &ip.daddr, 4);
	return 0;
}

static __always_inline __u32 csf_parse_ip6(void *ctx, const bool xdp, struct csf_pkt *p, __u32 off)
{
	struct ipv6hdr ip;
	__u8 h[8];

	if (p->len - off < sizeof(ip) || csf_load(ctx, xdp, off, &ip, sizeof(ip)))
		return CSF_CLASS_UNPARSABLE;
	if (ip.version != 6)
		return CSF_CLASS_UNPARSABLE;
	__u32 plen = bpf_ntohs(ip.payload_len);
	if (plen == 0)
		return CSF_CLASS_NA;
	if (plen > p->len - off - sizeof(ip))
		return CSF_CLASS_UNPARSABLE;
	p->l3_off = off;
	p->ipver = 6;
	__builtin_memcpy(&p->addr[0], &ip.saddr, 16);
	__builtin_memcpy(&p->addr[16], &ip.daddr, 16);

	__u32 cur = off + sizeof(ip);
	__u32 end = cur + plen;
	__u8 nh = ip.nexthdr;
	/* Fully unrolled: 6.1 verifiers reject a loop whose back-edge is a call's fall-through. */
#pragma unroll
	for (int i = 0; i <= CSF_MAX_IP6_EXT; i++) {
		if (nh != 0 && nh != 60 && nh != 43 && nh != 44)
			break;
		if (i == CSF_MAX_IP6_EXT)
			return CSF_CLASS_NA;
		if (end - cur < 8 || csf_load(ctx, xdp, cur, h, 8))
			return CSF_CLASS_UNPARSABLE;
		__u32 hl = nh == 44 ? 8 : ((__u32)h[1] + 1) * 8;
		if (hl > end - cur)
			return CSF_CLASS_UNPARSABLE;
		if (nh == 44 && ((((__u32)h[2] << 8 | h[3]) >> 3) || (h[3] & 1)))
			return CSF_CLASS_NA;
		if (nh == 43 && h[3] != 0)
			return CSF_CLASS_NA;
		nh = h[0];
		cur += hl;
	}
	p->proto = nh;
	p->l4_off = cur;
	p->l4_len = end - cur;
	return 0;
}

static __always_inline __u32 csf_parse_l4(void *ctx, const bool xdp, struct csf_pkt *p)
{
	__u32 L = p->l4_len;
	__be16 w;
	__u8 b;

	p->covered = L;
	p->pseudo_len = L;
	p->has_pseudo = 1;
	switch (p->proto) {
	case CSF_IPPROTO_TCP:
		if (L < 20 || csf_load(ctx, xdp, p->l4_off + 12, &b, 1))
			return CSF_CLASS_UNPARSABLE;
		if ((b >> 4) < 5 || (__u32)(b >> 4) * 4 > L)
			return CSF_CLASS_UNPARSABLE;
		p->field_off = p->l4_off + 16;
		return 0;
	case CSF_IPPROTO_UDP:
	case CSF_IPPROTO_UDPLITE: {
		if (L < 8 || csf_load(ctx, xdp, p->l4_off + 4, &w, 2))
			return CSF_CLASS_UNPARSABLE;
		__u32 v = bpf_ntohs(w);
		if (p->proto == CSF_IPPROTO_UDP) {
			if (v < 8 || v > L)
				return CSF_CLASS_UNPARSABLE;
			p->covered = v;
			p->pseudo_len = v;
		} else if (v != 0) {
			if (v < 8 || v > L)
				return CSF_CLASS_UNPARSABLE;
			p->covered = v;
		}
		p->field_off = p->l4_off + 6;
		return 0;
	}
	case CSF_IPPROTO_ICMP:
		if (p->ipver != 4)
			return CSF_CLASS_NA;
		if (L < 8)
			return CSF_CLASS_UNPARSABLE;
		p->has_pseudo = 0;
		p->field_off = p->l4_off + 2;
		return 0;
	case CSF_IPPROTO_ICMPV6:
		if (p->ipver != 6)
			return CSF_CLASS_NA;
		if (L < 8)
			return CSF_CLASS_UNPARSABLE;
		p->field_off = p->l4_off + 2;
		return 0;
	case CSF_IPPROTO_SCTP:
		if (L < 12)
			return CSF_CLASS_UNPARSABLE;
		p->has_pseudo = 0;
		p->field_off = p->l4_off + 8;
		return 0;
	}
	return CSF_CLASS_NA;
}

static __always_inline void csf_parse_ports(void *ctx, const bool xdp, struct csf_pkt *p)
{
	__be16 ports[2];

	if ((p->proto == CSF_IPPROTO_TCP || p->proto == CSF_IPPROTO_UDP ||
	     p->proto == CSF_IPPROTO_UDPLITE || p->proto == CSF_IPPROTO_SCTP) &&
	    !csf_load(ctx, xdp, p->l4_off, ports, 4)) {
		p->sport = bpf_ntohs(ports[0]);
		p->dport = bpf_ntohs(ports[1]);
	}
}

static __always_inline __u32 csf_parse_inline(void *ctx, const bool xdp, struct csf_pkt *p)
{
	__be16 w;
	__u32 off = 14;

	p->len = csf_frame_len(ctx, xdp);
	if (p->len < 14 || csf_load(ctx, xdp, 12, &w, 2))
		return CSF_CLASS_UNPARSABLE;
	__u16 et = bpf_ntohs(w);
#pragma unroll
	for (int i = 0; i <= CSF_MAX_VLAN; i++) {
		if (et != CSF_ETH_P_8021Q && et != CSF_ETH_P_8021AD)
			break;
		if (i == CSF_MAX_VLAN)
			return CSF_CLASS_NA;
		if (p->len - off < 4 || csf_load(ctx, xdp, off + 2, &w, 2))
			return CSF_CLASS_UNPARSABLE;
		et = bpf_ntohs(w);
		off += 4;
	}
	__u32 r;
	if (et == CSF_ETH_P_IP)
		r = csf_parse_ip4(ctx, xdp, p, off);
	else if (et == CSF_ETH_P_IPV6)
		r = csf_parse_ip6(ctx, xdp, p, off);
	else
		return CSF_CLASS_NA;
	if (r)
		return r;
	r = csf_parse_l4(ctx, xdp, p);
	if (!r)
		csf_parse_ports(ctx, xdp, p);
	return r;
}

#ifndef CSF_COMPAT
/* Global functions: the verifier checks each once, whatever state its callers are in, which keeps
 * the programs far below the complexity limit (verifier hygiene, STYLE.md). */
__noinline int csf_parse_tc(struct __sk_buff *skb, struct csf_pkt *p)
{
	if (!skb || !p)
		return CSF_CLASS_UNPARSABLE;
	return csf_parse_inline(skb, false, p);
}

__noinline int csf_parse_xdp(struct xdp_md *xdp, struct csf_pkt *p)
{
	if (!xdp || !p)
		return CSF_CLASS_UNPARSABLE;
	return csf_parse_inline(xdp, true, p);
}

static __always_inline __u32 csf_parse(void *ctx, const bool xdp, struct csf_pkt *p)
{
	return xdp ? csf_parse_xdp(ctx, p) : csf_parse_tc(ctx, p);
}
#else
/* The compat object: a global function may take no pointer but the context before 5.12, so the
 * parse writes its result into the per-CPU scratch buffer (free until a sum or CRC needs it)
 * and the caller copies it out at once. Still verified once each. */
_Static_assert(sizeof(struct csf_pkt) <= sizeof(struct csf_scratch), "csf_pkt fits the scratch");

#define CSF_PARSE_G(name, ctx_t, is_xdp)                                          \
	__noinline int name(ctx_t *ctx)                                           \
	{                                                                         \
		__u32 zero = 0;                                                   \
		struct csf_scratch *s = bpf_map_lookup_elem(&csf_scratch_map, &zero); \
		if (!ctx || !s)                                                   \
			return CSF_CLASS_UNPARSABLE;                              \
		struct csf_pkt *g = (void *)s->buf;                               \
		__builtin_memset(g, 0, sizeof(*g));                               \
		return csf_parse_inline(ctx, is_xdp, g);                          \
	}
CSF_PARSE_G(csf_parse_tc_g, struct __sk_buff, false)
CSF_PARSE_G(csf_parse_xdp_g, struct xdp_md, true)

static __always_inline __u32 csf_parse(void *ctx, const bool xdp, struct csf_pkt *p)
{
	__u32 zero = 0;
	const int r = xdp ? csf_parse_xdp_g(ctx) : csf_parse_tc_g(ctx);
	struct csf_scratch *s = bpf_map_lookup_elem(&csf_scratch_map, &zero);

	if (!s)
		return CSF_CLASS_UNPARSABLE;
	__builtin_memcpy(p, s->buf, sizeof(*p));
	return r;
}
#endif

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The kernel's checksum state of a tc packet (struct sk_buff, which __sk_buff does not show):
 * through bpf_cast_to_kern_ctx() where the kernel has it (6.2+), else CO-RE probe-reads of the
 * ctx, which is the sk_buff itself (6.1; the loader then needs CAP_PERFMON). See
 * docs/MECHANISMS.md §2. */
#ifndef CSUMFIX_BPF_LIB_SKB_H
#define CSUMFIX_BPF_LIB_SKB_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "csumfix/abi.h"

extern void *bpf_cast_to_kern_ctx(void *) __ksym __weak;
#ifndef CHECKSUM_PARTIAL
#define CHECKSUM_PARTIAL 3
#endif

static __always_inline bool csf_skb_is_partial(struct __sk_buff *ctx)
{
	if (bpf_ksym_exists(bpf_cast_to_kern_ctx)) {
		struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
		return BPF_CORE_READ_BITFIELD(skb, ip_summed) == CHECKSUM_PARTIAL;
	}
	struct sk_buff *skb = (struct sk_buff *)ctx;
	return BPF_CORE_READ_BITFIELD_PROBED(skb, ip_summed) == CHECKSUM_PARTIAL;
}

/* skb->ip_summed itself (CHECKSUM_NONE 0 ... CHECKSUM_PARTIAL 3): what the feature probe reports
 * after its trim (csf_probe_tail). */
static __always_inline __u32 csf_skb_summed(struct __sk_buff *ctx)
{
	if (bpf_ksym_exists(bpf_cast_to_kern_ctx)) {
		struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
		return BPF_CORE_READ_BITFIELD(skb, ip_summed);
	}
	struct sk_buff *skb = (struct sk_buff *)ctx;
	return BPF_CORE_READ_BITFIELD_PROBED(skb, ip_summed);
}

/* skb->encapsulation: inner headers are set (tunnel offloads); change_tail refuses those. */
static __always_inline bool csf_skb_encapsulated(struct __sk_buff *ctx)
{
	if (bpf_ksym_exists(bpf_cast_to_kern_ctx)) {
		struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
		return BPF_CORE_READ_BITFIELD(skb, encapsulation);
	}
	struct sk_buff *skb = (struct sk_buff *)ctx;
	return BPF_CORE_READ_BITFIELD_PROBED(skb, encapsulation);
}

/* CSF_BOUNCE_CSUM_LEVEL while CHECKSUM_UNNECESSARY marks a packet back from the bounce veth. */
static __always_inline bool csf_skb_bounced(struct __sk_buff *ctx)
{
	return bpf_csum_level(ctx, BPF_CSUM_LEVEL_QUERY) == CSF_BOUNCE_CSUM_LEVEL;
}

/* csum_start of a PARTIAL skb as an offset into the packet data (tc: from the MAC header). */
static __always_inline int csf_skb_csum_start_off(struct __sk_buff *ctx, __u32 *start, __u32 *off)
{
	struct sk_buff *skb;
	__u16 cs, co;
	unsigned char *head, *data;

	if (bpf_ksym_exists(bpf_cast_to_kern_ctx)) {
		skb = bpf_cast_to_kern_ctx(ctx);
		cs = skb->csum_start;
		co = skb->csum_offset;
		head = skb->head;
		data = skb->data;
	} else {
		skb = (struct sk_buff *)ctx;
		cs = BPF_CORE_READ(skb, csum_start);
		co = BPF_CORE_READ(skb, csum_offset);
		head = BPF_CORE_READ(skb, head);
		data = BPF_CORE_READ(skb, data);
	}
	if (cs < data - head)
		return -1;
	*start = cs - (data - head);
	*off = co;
	return 0;
}

#endif

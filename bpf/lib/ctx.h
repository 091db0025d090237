/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ctx shim: the same inline code serves tc (__sk_buff) and XDP (xdp_md). Every helper takes
 * `xdp` as a compile-time constant, so each program keeps only its own branch. */
#ifndef CSUMFIX_BPF_LIB_CTX_H
#define CSUMFIX_BPF_LIB_CTX_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

static __always_inline long csf_load(void *ctx, const bool xdp, __u32 off, void *to, __u32 len)
{
	if (xdp)
		return bpf_xdp_load_bytes((struct xdp_md *)ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline long csf_store(void *ctx, const bool xdp, __u32 off, const void *from,
				      __u32 len)
{
	if (xdp)
		return bpf_xdp_store_bytes((struct xdp_md *)ctx, off, (void *)from, len);
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
}

static __always_inline __u32 csf_frame_len(void *ctx, const bool xdp)
{
	if (xdp)
		return (__u32)bpf_xdp_get_buff_len((struct xdp_md *)ctx);
	return ((struct __sk_buff *)ctx)->len;
}

static __always_inline __u32 csf_ifindex(void *ctx, const bool xdp)
{
	if (xdp)
		return ((struct xdp_md *)ctx)->ingress_ifindex;
	return ((struct __sk_buff *)ctx)->ifindex;
}

#endif

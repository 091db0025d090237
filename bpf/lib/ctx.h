/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ctx shim: the same inline code serves tc (__sk_buff) and XDP (xdp_md). Every helper takes
 * `xdp` as a compile-time constant, so each program keeps only its own branch. */
#ifndef CSUMFIX_BPF_LIB_CTX_H
#define CSUMFIX_BPF_LIB_CTX_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifdef CSF_COMPAT
/* The compat object (no bpf_xdp_load_bytes/store_bytes/get_buff_len: 5.18) reaches an XDP frame
 * through its linear data, which is all of it on such kernels (multi-buffer XDP came with
 * those helpers): reads by bpf_probe_read_kernel (5.5; CAP_PERFMON, as the tc programs' CO-RE
 * reads), writes of the 2- or 4-byte checksum field by direct packet access. */
static __always_inline long csf_xdp_load(struct xdp_md *x, __u32 off, void *to, __u32 len)
{
	void *data = (void *)(long)x->data;
	void *end = (void *)(long)x->data_end;

	off &= 0xffff;
	if (data + off + len > end)
		return -1;
	return bpf_probe_read_kernel(to, len, data + off);
}

static __always_inline long csf_xdp_store(struct xdp_md *x, __u32 off, const void *from,
					  __u32 len)
{
	__u8 *data = (void *)(long)x->data;
	__u8 *end = (void *)(long)x->data_end;

	/* The verifier marks a packet pointer safe only while its variable part plus the access
	 * stays under 64 KiB; an XDP frame without fragments is at most a page. */
	if (off > 0x3fff)
		return -1;
	__u8 *p = data + (off & 0x3fff);

	if (len == 2) {
		if (p + 2 > end)
			return -1;
		__builtin_memcpy(p, from, 2);
		return 0;
	}
	if (len == 4) {
		if (p + 4 > end)
			return -1;
		__builtin_memcpy(p, from, 4);
		return 0;
	}
	return -1;
}

static __always_inline __u32 csf_xdp_len(struct xdp_md *x)
{
	return (__u32)((long)x->data_end - (long)x->data); /* 64-bit: no ALU32 on pointers */
}
#else
static __always_inline long csf_xdp_load(struct xdp_md *x, __u32 off, void *to, __u32 len)
{
	return bpf_xdp_load_bytes(x, off, to, len);
}

static __always_inline long csf_xdp_store(struct xdp_md *x, __u32 off, const void *from,
					  __u32 len)
{
	return bpf_xdp_store_bytes(x, off, (void *)from, len);
}

static __always_inline __u32 csf_xdp_len(struct xdp_md *x)
{
	return (__u32)bpf_xdp_get_buff_len(x);
}
#endif

/* Reads len bytes at off straight from the packet when they lie in its linear part: a bounds
 * check and a few loads instead of a helper call and a copy (headers, checksum fields). Nonzero
 * when they do not; the caller then takes the helper, which also reaches paged data. len is a
 * constant at every call site. Offsets past 16 KiB take the helpers: the verifier proves a
 * packet access only while the pointer's variable part plus the access stays under 64 KiB, and
 * the mask makes the bound visible to it. */
static __always_inline int csf_load_direct(void *ctx, const bool xdp, __u32 off, void *to,
					   __u32 len)
{
	__u8 *data, *end;

	if (xdp) {
		data = (void *)(long)((struct xdp_md *)ctx)->data;
		end = (void *)(long)((struct xdp_md *)ctx)->data_end;
	} else {
		data = (void *)(long)((struct __sk_buff *)ctx)->data;
		end = (void *)(long)((struct __sk_buff *)ctx)->data_end;
	}
	if (off > 0x3fff)
		return -1;
	__u8 *p = data + (off & 0x3fff);
	if (p + len > end)
		return -1;
	__builtin_memcpy(to, p, len);
	return 0;
}

/* Reads len bytes at off (a run-time len, up to a chunk: lib/csum.h) through the helpers. */
static __always_inline long csf_load_var(void *ctx, const bool xdp, __u32 off, void *to,
					 __u32 len)
{
	if (xdp)
		return csf_xdp_load((struct xdp_md *)ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

/* Reads len bytes at off, len a compile-time constant (headers, checksum fields): directly from
 * the linear part where they lie in it, else through the helpers. */
static __always_inline long csf_load(void *ctx, const bool xdp, __u32 off, void *to, __u32 len)
{
#ifndef CSF_COMPAT
	/* Not in the compat object: the extra branch's spills take its tc programs' stack over
	 * 512 bytes with the global sum beneath (the old verifiers' limit, docs/KERNELS.md). */
	if (!csf_load_direct(ctx, xdp, off, to, len))
		return 0;
#endif
	if (xdp)
		return csf_xdp_load((struct xdp_md *)ctx, off, to, len);
	return bpf_skb_load_bytes(ctx, off, to, len);
}

static __always_inline long csf_store(void *ctx, const bool xdp, __u32 off, const void *from,
				      __u32 len)
{
	if (xdp)
		return csf_xdp_store((struct xdp_md *)ctx, off, from, len);
	return bpf_skb_store_bytes(ctx, off, from, len, 0);
}

static __always_inline __u32 csf_frame_len(void *ctx, const bool xdp)
{
	if (xdp)
		return csf_xdp_len((struct xdp_md *)ctx);
	return ((struct __sk_buff *)ctx)->len;
}

static __always_inline __u32 csf_ifindex(void *ctx, const bool xdp)
{
	if (xdp)
		return ((struct xdp_md *)ctx)->ingress_ifindex;
	return ((struct __sk_buff *)ctx)->ifindex;
}

#endif

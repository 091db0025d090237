/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The pure-BPF fill mechanism (CSF_MECH_BPF) for packets the kernel holds as CHECKSUM_PARTIAL.
 *
 * No helper clears CHECKSUM_PARTIAL directly (docs/MECHANISMS.md §3). On kernels with the fix
 * "bpf: Fix bpf_skb_change_tail wrt csum partial skbs" (stable 6.1.189+, 6.12.112+), trimming the
 * packet to a length below its checksum field turns PARTIAL into NONE; older kernels refuse the
 * trim with -EINVAL (`csumfix probe` tries this trim and only picks this mechanism where it works).
 * So: save every byte from the checksum field to the end, trim to the field, grow back (the kernel
 * zero-fills), write the saved bytes back with the field replaced by the complete checksum.
 *
 * Failure handling keeps the promise that a packet is never corrupted:
 *   - before the trim succeeds nothing has changed: report an error, the packet stays PARTIAL and
 *     the kernel completes it wherever it would have;
 *   - once trimmed, a packet that cannot be restored completely is dropped, never sent short. */
#ifndef CSUMFIX_BPF_LIB_FILL_H
#define CSUMFIX_BPF_LIB_FILL_H

#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/csum.h"
#include "lib/skb.h"

/* The save buffer, csf_save_map (CSF_SAVE_CHUNKS of CSF_SAVE_CHUNK bytes), is in lib/maps.h. */

struct csf_copy {
	struct __sk_buff *skb;
	__u32 start; /* frame offset of the first saved byte */
	__u32 end;
	__u32 store; /* 0: packet -> save map, 1: save map -> packet */
	__u32 err;
};

static long csf_copy_cb(__u32 i, void *arg)
{
	struct csf_copy *c = arg;
	__u32 off = c->start + i * CSF_SAVE_CHUNK;

	if (off >= c->end)
		return 1;
	__u32 n = c->end - off;
	if (n > CSF_SAVE_CHUNK)
		n = CSF_SAVE_CHUNK;
	csf_barrier_var(n);
	n = ((n - 1) & (CSF_SAVE_CHUNK - 1)) + 1; /* [1, CSF_SAVE_CHUNK] for the verifier */
	struct csf_save *s = bpf_map_lookup_elem(&csf_save_map, &i);
	if (!s) {
		c->err = 1;
		return 1;
	}
	long r = c->store ? bpf_skb_store_bytes(c->skb, off, s->b, n, 0)
			  : bpf_skb_load_bytes(c->skb, off, s->b, n);
	if (r) {
		c->err = 1;
		return 1;
	}
	return 0;
}

#define CSF_TRIM_UNTOUCHED -1 /* nothing changed; the packet is still PARTIAL */
#define CSF_TRIM_DAMAGED -2   /* trimmed but not restored: the caller must drop it */

/* Completes a kernel-PARTIAL packet in place and clears PARTIAL. `field_off`/`width` locate the
 * L4 checksum as csumfix parsed it; the kernel's csum_start/csum_offset must agree, otherwise the
 * packet is left to the kernel. `value` is what the field must hold (2 bytes in network order for
 * TCP/UDP, or the 4-byte CRC32c for SCTP, as the bytes lie in the packet). */
static __always_inline int csf_fill_trim(struct __sk_buff *skb, __u32 l4_off, __u32 field_off,
					 __u32 width, __u32 value)
{
	__u32 start = 0, off = 0;

	if (csf_skb_csum_start_off(skb, &start, &off) || start != l4_off ||
	    start + off != field_off)
		return CSF_TRIM_UNTOUCHED;
	if (csf_skb_encapsulated(skb) || skb->gso_size)
		return CSF_TRIM_UNTOUCHED;
	const __u32 len = skb->len;
	if (field_off + width > len || len - field_off > CSF_SAVE_CHUNK * CSF_SAVE_CHUNKS)
		return CSF_TRIM_UNTOUCHED;

	struct csf_copy c = { .skb = skb, .start = field_off, .end = len };
	csf_loop(CSF_SAVE_CHUNKS, CSF_SAVE_CHUNKS, csf_copy_cb, &c);
	if (c.err)
		return CSF_TRIM_UNTOUCHED;

	if (bpf_skb_change_tail(skb, field_off, 0))
		return CSF_TRIM_UNTOUCHED; /* kernel without the fix: -EINVAL, nothing changed */
	const bool still_partial = csf_skb_is_partial(skb);
	if (bpf_skb_change_tail(skb, len, 0))
		return CSF_TRIM_DAMAGED;
	c.store = 1;
	c.err = 0;
	csf_loop(CSF_SAVE_CHUNKS, CSF_SAVE_CHUNKS, csf_copy_cb, &c);
	if (c.err || skb->len != len)
		return CSF_TRIM_DAMAGED;
	if (still_partial)
		/* The trim worked but PARTIAL stayed (not a kernel the probe accepts): the bytes are
		 * back as they were, so the kernel still completes it correctly. */
		return CSF_TRIM_UNTOUCHED;
	if (bpf_skb_store_bytes(skb, field_off, &value, width, 0))
		return CSF_TRIM_DAMAGED;
	return 0;
}

#endif

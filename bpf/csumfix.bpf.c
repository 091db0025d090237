// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* csumfix entry points: thin tc and XDP programs over bpf/lib. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/pipeline.h"
#include "lib/policy.h"
#include "lib/skb.h"

/* Tests only: the object the upgrade tests' second build embeds is compiled with
 * -DCSF_TEST_VARIANT=N, which adds one register load of N at the top of every entry point. It
 * changes nothing a packet sees, but every program's tag (the kernel's digest of its
 * instructions), as a rebuilt csumfix with changed programs would. */
#ifdef CSF_TEST_VARIANT
#define CSF_VARIANT_MARK()                                                           \
	do {                                                                         \
		long csf_mark;                                                       \
		asm volatile("%[r] = %[v]" : [r] "=r"(csf_mark) : [v] "i"(CSF_TEST_VARIANT)); \
	} while (0)
#else
#define CSF_VARIANT_MARK() do {} while (0)
#endif

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* Packets csumfix lets go get TC_ACT_UNSPEC ("no verdict": TCX_NEXT for tcx links, the next
 * filter for clsact + cls_bpf), never TC_ACT_OK: other users' programs and classic filters after
 * csumfix keep seeing the traffic, and the act_csum selector (below) can follow. With no one
 * after it, TC_ACT_UNSPEC lets the packet continue, as TC_ACT_OK would. */

static __always_inline int csf_tc(struct __sk_buff *skb, __u32 hook)
{
	CSF_VARIANT_MARK();
	/* csf_handle reads the kernel's checksum state (PARTIAL, GSO, back from the bounce veth)
	 * only where the interface's configuration needs it: a pass (no rule installed) costs the
	 * interface's slot and a look at whether any policy rule is installed, no parse. */
	struct csf_meta m = {};
	struct csf_outcome o = {};
	__u32 target = 0;

	csf_handle(skb, false, hook, &m, &o, &target);
	if (o.drop)
		return TC_ACT_SHOT;
	if (o.redirect)
		return bpf_redirect(target, 0);
	return TC_ACT_UNSPEC;
}

/* tcx section names set the expected attach type tcx links need (6.6+); older kernels ignore
 * it for sched_cls, and clsact + cls_bpf accepts the same programs. */
SEC("tcx/ingress")
int csf_tc_ingress(struct __sk_buff *skb)
{
	return csf_tc(skb, CSF_HOOK_TC_INGRESS);
}

SEC("tcx/egress")
int csf_tc_egress(struct __sk_buff *skb)
{
	return csf_tc(skb, CSF_HOOK_TC_EGRESS);
}

SEC("xdp")
int csf_xdp(struct xdp_md *xdp)
{
	CSF_VARIANT_MARK();
	struct csf_meta m = {};
	struct csf_outcome o = {};
	__u32 target = 0;

	csf_handle(xdp, true, CSF_HOOK_XDP, &m, &o, &target);
	if (o.drop)
		return XDP_DROP;
	if (m.xdp_redirect)
		return bpf_redirect(target, 0);
	return XDP_PASS;
}

/* Bounce mechanism, on the ingress of the receiving end of a bounce veth: the core completed the
 * checksum when the packet left the other end (its tx checksum offload is off). Mark it
 * (CHECKSUM_UNNECESSARY, level CSF_BOUNCE_CSUM_LEVEL) and send it back where it came from. */
SEC("tcx/ingress")
int csf_bounce_return(struct __sk_buff *skb)
{
	CSF_VARIANT_MARK();
	__u32 ifindex = skb->ifindex;
	struct csf_bounce_ret *ret = bpf_map_lookup_elem(&csf_bounce, &ifindex);

	if (!ret)
		return TC_ACT_SHOT; /* nothing but bounced packets belongs on this veth */
	struct csf_if_key key = { .ifindex = ret->target_ifindex, .hook = ret->hook };
	if (csf_skb_is_partial(skb)) {
		/* Not completed (should not happen: tx csum is off): never loop. */
		struct csf_slot *s = csf_slot_get(&key);
		if (s)
			s->ctr.c[CSF_CTR_FILL_ERROR]++;
		return TC_ACT_SHOT;
	}
#pragma unroll
	for (int i = 0; i <= CSF_BOUNCE_CSUM_LEVEL; i++)
		bpf_csum_level(skb, BPF_CSUM_LEVEL_INC);
	return bpf_redirect(ret->target_ifindex,
			    ret->hook == CSF_HOOK_TC_INGRESS ? BPF_F_INGRESS : 0);
}

/* act_csum mechanism: the selector of a classic (not direct-action) cls_bpf filter whose action
 * is `csum tcp udp udplite sctp` with control "continue", right after csumfix's own program (tcx,
 * or clsact at the next priority). The ifb mechanism uses the same selector with the action
 * `mirred egress redirect dev <ifb>` (tc ingress only) where the program cannot redirect into
 * the ifb itself. act_csum recomputes whatever reaches it (net/sched/act_csum.c), so the selector
 * matches only what csumfix's program just decided to fill (CSF_CB_SELECT, lib/pipeline.h): a
 * kernel-PARTIAL, non-GSO packet whose effective action (interface default or policy rule) is
 * fill or zero-udp4. It checks PARTIAL and the interface's mechanism again, so that nothing else
 * ever reaches the action.
 * Returns -1 (match, the filter's classid) or 0 (no match). */
static __always_inline int csf_act_select(struct __sk_buff *skb, __u32 hook)
{
	CSF_VARIANT_MARK();
	if (skb->cb[CSF_CB_SELECT] != CSF_CB_SELECT_FILL || !csf_skb_is_partial(skb))
		return 0;
	struct csf_if_key key = { .ifindex = skb->ifindex, .hook = hook };
	struct csf_slot *s = csf_slot_get(&key);
	if (!s || !s->has_cfg ||
	    (s->cfg.mechanism != CSF_MECH_ACT_CSUM && s->cfg.mechanism != CSF_MECH_IFB))
		return 0;
	s->ctr.c[CSF_CTR_ACT_SELECTED]++;
	return -1;
}

SEC("tc")
int csf_act_select_ingress(struct __sk_buff *skb)
{
	return csf_act_select(skb, CSF_HOOK_TC_INGRESS);
}

SEC("tc")
int csf_act_select_egress(struct __sk_buff *skb)
{
	return csf_act_select(skb, CSF_HOOK_TC_EGRESS);
}

/* Feature probe (userspace/control/probe.cc): on lo egress in a throwaway namespace, trim one
 * locally generated (CHECKSUM_PARTIAL) UDP datagram below its checksum field and report whether
 * the kernel dropped the PARTIAL state in csf_probe (lib/maps.h). The probe packet is dropped. */
SEC("tcx/egress")
int csf_probe_tail(struct __sk_buff *skb)
{
	__u32 zero = 0, start = 0, off = 0;
	struct csf_probe_result *r = bpf_map_lookup_elem(&csf_probe, &zero);

	if (!r || r->seen || !csf_skb_is_partial(skb) || skb->gso_size)
		return TC_ACT_OK;
	if (csf_skb_csum_start_off(skb, &start, &off))
		return TC_ACT_OK;
	__u32 len = skb->len;
	r->seen = 1;
	r->trim_ret = bpf_skb_change_tail(skb, start + off, 0);
	r->summed_after = csf_skb_summed(skb);
	r->regrow_ret = bpf_skb_change_tail(skb, len, 0);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-flow policy lookup: tuple-space search (abi.h, docs/POLICY.md) over the maps csf_pol_active,
 * csf_pol_masks and csf_pol_rules (lib/maps.h). One hash lookup per mask, walked by bpf_loop; the
 * highest-precedence match wins. */
#ifndef CSUMFIX_BPF_LIB_POLICY_H
#define CSUMFIX_BPF_LIB_POLICY_H

#include "lib/ctx.h"
#include "lib/maps.h"
#include "lib/parse.h"

/* State a bpf_loop callback carries from one iteration to the next must look unknown to the
 * verifier. Kernels before "bpf: verify callbacks as if they are called unknown number of times"
 * (6.7; Debian's 6.1 among them) verify a callback once, in the caller's state at the call: with
 * w->found known to be 0 there, the branch that compares a later match with the best so far is
 * never explored and gets hard-wired away, so the last matching mask won instead of the highest
 * precedence one (seen on 6.1.192 in the VM matrix: a zone's fill rule beat its pass rule). A load
 * from .bss is an unknown scalar to every verifier; nothing writes it, so it is 0. */
volatile __u32 csf_opaque_zero;

struct csf_pol_walk {
	const struct csf_pkt *p;
	__u32 ifindex;
	__u32 hook;
	__u32 gen;
	struct csf_pol_val best;
	__u32 found;
};

static long csf_pol_step(__u32 i, void *arg)
{
	struct csf_pol_walk *w = arg;
	struct csf_pol_key k = {};

	if (i >= CSF_POL_MAX_MASKS)
		return 1;
	__u32 idx = w->gen * CSF_POL_MAX_MASKS + i;
	struct csf_pol_mask *m = bpf_map_lookup_elem(&csf_pol_masks, &idx);
	if (!m)
		return 1;
	if (!m->used)
		return 0;
	const struct csf_pkt *p = w->p;
	if ((m->flags & CSF_POL_F_IPVER) && m->ipver != p->ipver)
		return 0; /* this mask's rules are for the other IP version */
	k.gen_mask = w->gen << 8 | i;
	if (m->flags & CSF_POL_F_IFINDEX)
		k.t.ifindex = w->ifindex;
	if (m->flags & CSF_POL_F_HOOK)
		k.t.hook = w->hook;
	if (m->flags & CSF_POL_F_IPVER)
		k.t.ipver = p->ipver;
	if (m->flags & CSF_POL_F_PROTO)
		k.t.proto = p->proto;
	if (m->flags & CSF_POL_F_SPORT)
		k.t.sport = p->sport;
	if (m->flags & CSF_POL_F_DPORT)
		k.t.dport = p->dport;
#pragma unroll
	for (int b = 0; b < 16; b++) {
		k.t.src[b] = p->addr[b] & m->src_mask[b];
		k.t.dst[b] = p->addr[16 + b] & m->dst_mask[b];
	}
	struct csf_pol_val *v = bpf_map_lookup_elem(&csf_pol_rules, &k);
	if (v && (!w->found || v->priority < w->best.priority ||
		  (v->priority == w->best.priority && v->rule_id < w->best.rule_id))) {
		w->best = *v;
		w->found = 1;
	}
	return 0;
}

/* csf_handle parses a packet at most once: *parsed holds csf_parse()'s result, or
 * CSF_NOT_PARSED until someone needs it. */
#define CSF_NOT_PARSED 0xffffffffu

/* The active rule set's generation + 1, or 0 when no rule is installed (the common case: one
 * array lookup, then no parse for the policy). */
static __always_inline __u32 csf_policy_active(void)
{
	__u32 zero = 0;
	struct csf_pol_active *a = bpf_map_lookup_elem(&csf_pol_active, &zero);

	return a ? a->active : 0;
}

/* The action of the best matching rule, if any. Only packets parsed down to L4 are matched. */
static __always_inline bool csf_policy(void *ctx, const bool xdp, __u32 ifindex, __u32 hook,
				       __u32 active, __u32 *action, struct csf_pkt *pp,
				       __u32 *parsed)
{
	if (active == 0)
		return false;
	if (*parsed == CSF_NOT_PARSED)
		*parsed = csf_parse(ctx, xdp, pp); /* pp is zeroed: IPv4 leaves addr[4..15] zero */
	if (*parsed)
		return false;
	struct csf_pol_walk w = { .p = pp, .ifindex = ifindex, .hook = hook, .gen = (active - 1) & 1 };
	w.found = csf_opaque_zero; /* loop-carried: see csf_opaque_zero */
	w.best.priority = csf_opaque_zero;
	w.best.rule_id = csf_opaque_zero;
	w.best.action = csf_opaque_zero;
	csf_loop(CSF_POL_MAX_MASKS, CSF_POL_MAX_MASKS, csf_pol_step, &w);
	if (!w.found || w.best.action >= CSF_ACT_MAX)
		return false;
	*action = w.best.action;
	return true;
}

#endif

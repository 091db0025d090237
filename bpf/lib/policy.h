/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Classification and actions per docs/SEMANTICS.md §2-3, and the per-(ifindex, hook) counters. */
#ifndef CSUMFIX_BPF_LIB_POLICY_H
#define CSUMFIX_BPF_LIB_POLICY_H

#include "lib/ctx.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/skb.h"
#include "lib/fill.h"
#include <bpf/bpf_core_read.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CSF_MAX_IFACES * CSF_HOOK_MAX);
	__type(key, struct csf_if_key);
	__type(value, struct csf_counters);
} csf_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_MAX_IFACES * CSF_HOOK_MAX);
	__type(key, struct csf_if_key);
	__type(value, struct csf_ifcfg);
} csf_ifcfg SEC(".maps");

/* Bounce mechanism: receiving end of a bounce veth -> where the packet returns to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_MAX_IFACES * 2);
	__type(key, __u32);
	__type(value, struct csf_bounce_ret);
} csf_bounce SEC(".maps");

/* ---- Per-flow policy: tuple-space search (abi.h, docs/POLICY.md) ---- */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_pol_active);
} csf_pol_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * CSF_POL_MAX_MASKS);
	__type(key, __u32);
	__type(value, struct csf_pol_mask);
} csf_pol_masks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_POL_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct csf_pol_key);
	__type(value, struct csf_pol_val);
} csf_pol_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CSF_FLOWS_MAX);
	__type(key, struct csf_tuple);
	__type(value, struct csf_flow_val);
} csf_flows SEC(".maps");

/* Userspace's copy of the rules as written (never read by the programs). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_POL_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct csf_pol_rule);
} csf_pol_store SEC(".maps");

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

/* The action of the best matching rule, if any. Only packets parsed down to L4 are matched. */
static __always_inline bool csf_policy(void *ctx, const bool xdp, __u32 ifindex, __u32 hook,
				       __u32 *action, struct csf_pkt *pp, __u32 *parsed)
{
	__u32 zero = 0;
	struct csf_pol_active *a = bpf_map_lookup_elem(&csf_pol_active, &zero);

	__u32 active = a ? a->active : 0;
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
	bpf_loop(CSF_POL_MAX_MASKS, csf_pol_step, &w, 0);
	if (!w.found || w.best.action >= CSF_ACT_MAX)
		return false;
	*action = w.best.action;
	return true;
}

/* Zero values for new map entries, kept off the stack: a tc program, its callee and a bpf_loop
 * callback share 512 bytes (6.1 rounds each frame up to 32 and refused 544). */
static const struct csf_counters csf_counters_zero;
static const struct csf_flow_val csf_flow_zero;

static __always_inline struct csf_counters *csf_counters_get(const struct csf_if_key *key)
{
	struct csf_counters *c = bpf_map_lookup_elem(&csf_counters, key);

	if (c)
		return c;
	bpf_map_update_elem(&csf_counters, key, &csf_counters_zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&csf_counters, key);
}

struct csf_meta {
	bool is_partial;
	bool is_gso;
	__u32 mechanism;      /* CSF_MECH_* (tc) */
	bool xdp_redirect;    /* XDP: the frame leaves by XDP_REDIRECT, so seeds get filled */
};

struct csf_outcome {
	__u32 cls;
	__u32 ip4_bad;
	__u32 filled;
	__u32 zeroed;
	__u32 fill_error;
	__u32 drop;
	__u32 bounce; /* send out of the bounce veth */
	__u32 act_csum; /* continue to the classic act_csum selector (tc: TC_ACT_UNSPEC) */
};

static __always_inline __u16 csf_read16(void *ctx, const bool xdp, __u32 off, int *err)
{
	__u16 v = 0;

	if (csf_load(ctx, xdp, off, &v, 2))
		*err = 1;
	return v;
}

/* Only flows that show partial or bad checksums are recorded: the table answers "which flows are
 * really affected" and costs nothing for healthy traffic. */
static __always_inline void csf_flow_note(const struct csf_pkt *p, __u32 ifindex, __u32 hook,
					  const struct csf_outcome *o)
{
	if (o->cls != CSF_CLASS_PARTIAL && o->cls != CSF_CLASS_BAD)
		return;
	struct csf_tuple k = { .ifindex = ifindex, .hook = hook, .ipver = p->ipver,
				  .proto = p->proto, .sport = p->sport, .dport = p->dport };
	__builtin_memcpy(k.src, &p->addr[0], 16); /* IPv4: bytes 4.. are zero */
	__builtin_memcpy(k.dst, &p->addr[16], 16);
	struct csf_flow_val *v = bpf_map_lookup_elem(&csf_flows, &k);
	if (!v) {
		bpf_map_update_elem(&csf_flows, &k, &csf_flow_zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&csf_flows, &k);
		if (!v)
			return;
	}
	if (o->cls == CSF_CLASS_PARTIAL)
		__sync_fetch_and_add(&v->partial, 1);
	else
		__sync_fetch_and_add(&v->bad, 1);
	if (o->filled)
		__sync_fetch_and_add(&v->filled, 1);
	v->last_ns = bpf_ktime_get_ns();
}

/* Fills `o` for `action`; writes the packet when the action fills. */
static __always_inline void csf_apply_pkt(void *ctx, const bool xdp, __u32 action,
					  const struct csf_meta *m, struct csf_outcome *o,
					  struct csf_pkt *pp, __u32 parsed)
{
	int err = 0;
	const bool verifying = action != CSF_ACT_OBSERVE;

	if (m->is_gso) {
		o->cls = CSF_CLASS_GSO;
		return;
	}
	__u32 r = parsed != CSF_NOT_PARSED ? parsed : csf_parse(ctx, xdp, pp);
	if (verifying && pp->ip4_ihl4) {
		int ok = csf_ip4_hdr_ok(ctx, xdp, pp);
		o->ip4_bad = ok == 0;
	}
	if (r) {
		o->cls = r;
		return;
	}

	const bool sctp = pp->proto == CSF_IPPROTO_SCTP;
	const bool udp = pp->proto == CSF_IPPROTO_UDP || pp->proto == CSF_IPPROTO_UDPLITE;
	__u32 field32 = 0;
	__u16 field = 0;
	if (sctp) {
		if (csf_load(ctx, xdp, pp->field_off, &field32, 4))
			err = 1;
	} else {
		field = csf_read16(ctx, xdp, pp->field_off, &err);
	}
	if (err) {
		o->cls = CSF_CLASS_UNPARSABLE;
		return;
	}
	if (udp && field == 0) {
		o->cls = (pp->proto == CSF_IPPROTO_UDP && pp->ipver == 4) ? CSF_CLASS_ZERO : CSF_CLASS_BAD;
		return;
	}

	__u64 pseudo = pp->has_pseudo ? csf_pseudo_sum(pp) : 0;
	const bool has_seed = pp->proto != CSF_IPPROTO_ICMP;
	const bool is_seed = sctp ? field32 == 0 : (has_seed && field == csf_fold(pseudo));

	if (action == CSF_ACT_OBSERVE) {
		o->cls = (m->is_partial || is_seed) ? CSF_CLASS_PARTIAL : CSF_CLASS_UNVERIFIED;
		return;
	}

	/* Full verification. `correct` is the value the field must hold. */
	__u32 correct = 0;
	bool valid = false;
	if (sctp) {
		if (csf_crc32c_range(ctx, xdp, pp->l4_off, pp->l4_off + pp->l4_len, &correct)) {
			o->fill_error = 1;
			o->cls = CSF_CLASS_UNPARSABLE;
			return;
		}
		valid = correct == field32;
	} else {
		__u64 sum;
		if (csf_sum_range(ctx, xdp, pp->l4_off, pp->l4_off + pp->covered, &sum)) {
			o->fill_error = 1;
			o->cls = CSF_CLASS_UNPARSABLE;
			return;
		}
		sum += pseudo;
		valid = csf_fold(sum) == 0xffff;
		__u16 c = ~csf_fold(sum + (__u16)~field);
		correct = c ? c : 0xffff;
	}

	if (m->is_partial)
		o->cls = CSF_CLASS_PARTIAL;
	else if (valid)
		o->cls = CSF_CLASS_VALID;
	else if (is_seed)
		o->cls = CSF_CLASS_PARTIAL;
	else
		o->cls = CSF_CLASS_BAD;

	if (o->cls != CSF_CLASS_PARTIAL || (xdp && !m->xdp_redirect) ||
	    (action != CSF_ACT_FILL && action != CSF_ACT_ZERO_UDP4))
		return;
	if (m->is_partial) {
		/* The kernel will complete this packet itself unless its PARTIAL state goes too:
		 * writing the bytes alone would be checksummed again. Only a mechanism may fill it;
		 * zero-udp4 cannot be expressed by the core's completion, so it fills. */
		if (xdp)
			return; /* XDP never sees the kernel's state (is_partial is false there) */
		if (m->mechanism == CSF_MECH_BOUNCE) {
			o->bounce = 1;
			o->filled = 1;
		} else if (m->mechanism == CSF_MECH_ACT_CSUM) {
			/* The classic cls_bpf selector behind us hands it to act_csum, which
			 * recomputes it in software and sets CHECKSUM_NONE. */
			o->act_csum = 1;
			o->filled = 1;
		} else if (m->mechanism == CSF_MECH_BPF) {
			const bool zero = action == CSF_ACT_ZERO_UDP4 &&
					  pp->proto == CSF_IPPROTO_UDP && pp->ipver == 4;
			int t = csf_fill_trim(ctx, pp->l4_off, pp->field_off, sctp ? 4 : 2,
					      zero ? 0 : correct);
			if (t == 0) {
				o->filled = !zero;
				o->zeroed = zero;
			} else {
				o->fill_error = 1;
				o->drop = t == CSF_TRIM_DAMAGED;
			}
		}
		return;
	}

	if (action == CSF_ACT_ZERO_UDP4 && pp->proto == CSF_IPPROTO_UDP && pp->ipver == 4) {
		__u16 z = 0;
		if (csf_store(ctx, xdp, pp->field_off, &z, 2))
			o->fill_error = 1;
		else
			o->zeroed = 1;
		return;
	}
	long e;
	if (sctp) {
		e = csf_store(ctx, xdp, pp->field_off, &correct, 4);
	} else {
		__u16 c16 = correct;
		e = csf_store(ctx, xdp, pp->field_off, &c16, 2);
	}
	if (e)
		o->fill_error = 1;
	else
		o->filled = 1;
}

static __always_inline void csf_apply(void *ctx, const bool xdp, __u32 action,
				      const struct csf_meta *m, struct csf_outcome *o, __u32 ifindex,
				      __u32 hook, struct csf_pkt *pp, __u32 parsed)
{
	csf_apply_pkt(ctx, xdp, action, m, o, pp, parsed);
	csf_flow_note(pp, ifindex, hook, o);
}

static __always_inline void csf_count(struct csf_counters *c, __u32 len, __u32 action,
				      const struct csf_outcome *o)
{
	if (!c)
		return;
	c->c[CSF_CTR_PACKETS]++;
	c->c[CSF_CTR_BYTES] += len;
	__u32 ci = CSF_CTR_CLASS_BASE + o->cls;
	__u32 ai = CSF_CTR_ACTION_BASE + action;
	csf_barrier_var(ci);
	csf_barrier_var(ai);
	if (ci < CSF_CTR_CLASS_BASE + CSF_CLASS_MAX)
		c->c[ci]++;
	if (ai < CSF_CTR_ACTION_BASE + CSF_ACT_MAX)
		c->c[ai]++;
	c->c[CSF_CTR_FILLED] += o->filled;
	c->c[CSF_CTR_ZEROED] += o->zeroed;
	c->c[CSF_CTR_DROPPED] += o->drop;
	c->c[CSF_CTR_IP4_HDR_BAD] += o->ip4_bad;
	c->c[CSF_CTR_FILL_ERROR] += o->fill_error;
	c->c[CSF_CTR_BOUNCED] += o->bounce;
}

/* Entry. `m` is filled here: the interface's configuration (mechanism, XDP redirect) and, for tc,
 * the kernel's checksum state of the packet, read only when the action needs it. */
static __always_inline void csf_handle(void *ctx, const bool xdp, __u32 hook, struct csf_meta *m,
				       struct csf_outcome *o, __u32 *target_ifindex)
{
	struct csf_if_key key = { .ifindex = csf_ifindex(ctx, xdp), .hook = hook };
	struct csf_ifcfg *cfg = bpf_map_lookup_elem(&csf_ifcfg, &key);
	__u32 action = cfg ? cfg->action : CSF_ACT_PASS;

	if (cfg) {
		m->mechanism = cfg->mechanism;
		*target_ifindex = cfg->target_ifindex;
		m->xdp_redirect = xdp && (cfg->flags & CSF_IFCFG_F_XDP_REDIRECT);
	}
	if (!xdp && m->mechanism == CSF_MECH_BOUNCE && csf_skb_bounced(ctx)) {
		/* Second pass of a packet the bounce veth completed (it comes back only to an
		 * interface using bounce): it was counted the first time; note its return and let
		 * it go. */
		struct csf_counters *c = csf_counters_get(&key);
		if (c)
			c->c[CSF_CTR_BOUNCE_RETURNED]++;
		return;
	}
	if (action >= CSF_ACT_MAX)
		action = CSF_ACT_PASS;
	struct csf_pkt p = {};
	__u32 parsed = CSF_NOT_PARSED;
	bool hit = cfg && csf_policy(ctx, xdp, key.ifindex, hook, &action, &p, &parsed);
	if (action != CSF_ACT_PASS) {
		if (!xdp) {
			m->is_partial = csf_skb_is_partial(ctx);
			m->is_gso = ((struct __sk_buff *)ctx)->gso_size != 0;
		}
		csf_apply(ctx, xdp, action, m, o, key.ifindex, hook, &p, parsed);
	}
	if (action == CSF_ACT_DROP_BAD)
		o->drop = o->cls == CSF_CLASS_BAD || o->ip4_bad;
	/* (o->drop may also be set by a pure-BPF fill that could not restore a trimmed packet.) */
	struct csf_counters *c = csf_counters_get(&key);
	csf_count(c, csf_frame_len(ctx, xdp), action, o);
	if (c && hit)
		c->c[CSF_CTR_POLICY_HIT]++;
}

#endif

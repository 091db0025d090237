/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The per-packet pipeline of the tc and XDP programs, csf_handle: the interface's configuration
 * and the policy give the action; the packet is classified (docs/SEMANTICS.md §2), the action
 * applied (§3), and the outcome counted per (ifindex, hook) and, for affected flows, per flow. */
#ifndef CSUMFIX_BPF_LIB_PIPELINE_H
#define CSUMFIX_BPF_LIB_PIPELINE_H

#include "lib/ctx.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/skb.h"
#include "lib/fill.h"
#include "lib/maps.h"
#include "lib/policy.h"

/* Zero values for new map entries, kept off the stack: a tc program, its callee and a bpf_loop
 * callback share 512 bytes (6.1 rounds each frame up to 32 and refused 544). */
static const struct csf_slot csf_slot_zero;
static const struct csf_flow_val csf_flow_zero;

/* The slot of (ifindex, hook) on this CPU, created zeroed on first use, with its copy of the
 * csf_ifcfg entry brought up to date when csf_cfg_gen moved: one hash lookup per packet, plus an
 * array lookup the verifier inlines. The generation is read before the entry, so an entry
 * changed meanwhile is copied again by the next packet (on x86-64, whose loads are not
 * reordered with each other; a weakly ordered CPU could pair a new generation with the old
 * entry until the next change). Generation 0 is "none written yet" (a csf_cfg_gen just made,
 * e.g. by an upgrade from 0.1 against csf_ifcfg entries it never saw): then the entry is read
 * for every packet, as before the slots; userspace writes a generation at every load. */
static __always_inline struct csf_slot *csf_slot_get(const struct csf_if_key *key)
{
	__u32 zero = 0;
	struct csf_cfg_gen *g = bpf_map_lookup_elem(&csf_cfg_gen, &zero);
	struct csf_slot *s = bpf_map_lookup_elem(&csf_slots, key);

	if (!g)
		return NULL;
	if (!s) {
		bpf_map_update_elem(&csf_slots, key, &csf_slot_zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&csf_slots, key);
	}
	if (!s) {
		/* csf_slots is full: the attachment still does its job, with this CPU's spare slot,
		 * whose copy is taken for every packet and whose counts are nobody's. */
		s = bpf_map_lookup_elem(&csf_slot_spare, &zero);
		if (!s)
			return NULL;
		s->gen = 0;
	}
	const __u64 gen = *(volatile __u64 *)&g->gen;
	if (s->gen != gen || gen == 0) {
		struct csf_ifcfg *cfg = bpf_map_lookup_elem(&csf_ifcfg, key);
		if (cfg) {
			s->cfg = *cfg;
			s->has_cfg = 1;
		} else {
			s->has_cfg = 0;
		}
		s->gen = gen;
	}
	return s;
}

/* Not pinned: the parsed headers of the packet at hand, per CPU rather than on the stack, which the
 * tc programs share with the subprograms and callbacks they call (512 bytes in all). csumfix's
 * programs never run nested on one CPU (tc and XDP run in softirq or with bottom halves off, and
 * none of them transmits synchronously), and each is done with it before it returns. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_pkt);
} csf_pkt_map SEC(".maps");

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
	__u32 handoff;  /* tc, kernel-PARTIAL: the interface's mechanism completes it (bounce veth,
			 * act_csum or the ifb); csf_handle says how once, at its end */
	__u32 redirect; /* set by csf_handle: bpf_redirect to the target (bounce veth, or the ifb) */
};

/* The hand-off to the classic selector (act-csum; ifb where the program cannot redirect into the
 * ifb itself): the tc programs of one hook share the skb's control buffer (struct __sk_buff cb[],
 * the kernel's qdisc_skb_cb data), so csumfix's program writes its decision there for every
 * packet of an interface using such a mechanism, and the selector right behind it reads it
 * instead of parsing the packet and looking up the policy again. */
#define CSF_CB_SELECT 4
#define CSF_CB_SELECT_FILL 0xc5f5e1ecu

/* ---- Apply the action (docs/SEMANTICS.md §3) ---- */

/* A packet the kernel holds as CHECKSUM_PARTIAL (tc only). The kernel will complete it itself
 * unless its PARTIAL state goes too: writing the bytes alone would be checksummed again. Only a
 * mechanism may fill it; zero-udp4 cannot be expressed by the core's completion, so it fills. */
static __always_inline void csf_fill_kernel_partial(void *ctx, __u32 action,
						    const struct csf_meta *m, struct csf_outcome *o,
						    const struct csf_pkt *pp, __u32 correct,
						    const bool sctp)
{
	if (m->mechanism == CSF_MECH_BOUNCE || m->mechanism == CSF_MECH_ACT_CSUM ||
	    m->mechanism == CSF_MECH_IFB) {
		/* Completed by the mechanism once csumfix's program is done with it: out of the bounce
		 * veth and back; the classic cls_bpf selector behind us hands it to act_csum, which
		 * recomputes it in software and sets CHECKSUM_NONE, or (ifb) to mirred, which sends
		 * it through an ifb whose transmit path completes it in software and re-injects it;
		 * or the program redirects it into the ifb itself. Which one is resolved once, at the
		 * end of csf_handle: one outcome here rather than one per mechanism keeps the
		 * verifier's walk of everything after this (every parse path) from multiplying. */
		o->handoff = 1;
		o->filled = 1;
	} else if (m->mechanism == CSF_MECH_BPF) {
		const bool zero = action == CSF_ACT_ZERO_UDP4 && pp->proto == CSF_IPPROTO_UDP &&
				  pp->ipver == 4;
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
}

/* A seed in the bytes only (the kernel does not hold the packet as PARTIAL): the field is written
 * in place, 0 for zero-udp4 on UDP over IPv4, else *correct. */
static __always_inline void csf_fill_in_place(void *ctx, const bool xdp, __u32 action,
					      struct csf_outcome *o, const struct csf_pkt *pp,
					      const __u32 *correct, const bool sctp)
{
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
		e = csf_store(ctx, xdp, pp->field_off, correct, 4);
	} else {
		__u16 c16 = *correct;
		e = csf_store(ctx, xdp, pp->field_off, &c16, 2);
	}
	if (e)
		o->fill_error = 1;
	else
		o->filled = 1;
}

/* Applies fill or zero-udp4 to a fully verified packet: only one classified partial is written
 * (under XDP only a frame that is redirected); other actions and classes leave it as it is.
 * *correct is the value its checksum field must hold. */
static __always_inline void csf_fill(void *ctx, const bool xdp, __u32 action,
				     const struct csf_meta *m, struct csf_outcome *o,
				     const struct csf_pkt *pp, __u32 *correct, const bool sctp)
{
	if (o->cls != CSF_CLASS_PARTIAL || (xdp && !m->xdp_redirect) ||
	    (action != CSF_ACT_FILL && action != CSF_ACT_ZERO_UDP4))
		return;
	if (m->is_partial) {
		if (xdp)
			return; /* XDP never sees the kernel's state (is_partial is false there) */
		csf_fill_kernel_partial(ctx, action, m, o, pp, *correct, sctp);
		return;
	}
	csf_fill_in_place(ctx, xdp, action, o, pp, correct, sctp);
}

/* ---- Classify (docs/SEMANTICS.md §2), then apply ---- */

static __always_inline __u16 csf_read16(void *ctx, const bool xdp, __u32 off, int *err)
{
	__u16 v = 0;

	if (csf_load(ctx, xdp, off, &v, 2))
		*err = 1;
	return v;
}

/* The checksum field as it lies in the packet: *field32 for SCTP's CRC32c, else *field. Nonzero
 * when it cannot be read. */
static __always_inline int csf_read_field(void *ctx, const bool xdp, const struct csf_pkt *pp,
					  const bool sctp, __u32 *field32, __u16 *field)
{
	int err = 0;

	if (sctp) {
		if (csf_load(ctx, xdp, pp->field_off, field32, 4))
			err = 1;
	} else {
		*field = csf_read16(ctx, xdp, pp->field_off, &err);
	}
	return err;
}

/* Classifies the packet into o->cls (and o->ip4_bad when verifying) and hands a fully verified one
 * to csf_fill. The classification stays inline here on purpose: moved into a csf_classify() that
 * returns whether to go on, the same logic compiles (clang 19) to other registers, stack slots
 * and ~30 fewer instructions per program, code the 6.1 verifier has not been run on. */
static __always_inline void csf_apply_pkt(void *ctx, const bool xdp, __u32 action,
					  const struct csf_meta *m, struct csf_outcome *o,
					  struct csf_pkt *pp, __u32 parsed)
{
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
	if (csf_read_field(ctx, xdp, pp, sctp, &field32, &field)) {
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

	csf_fill(ctx, xdp, action, m, o, pp, &correct, sctp);
}

/* ---- Count ---- */

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

static __always_inline void csf_count(struct csf_counters *c, __u32 len, __u32 action,
				      const struct csf_outcome *o)
{
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
}

/* ---- Entry ---- */

/* Classify and apply, then note the flow if it is affected. */
static __always_inline void csf_apply(void *ctx, const bool xdp, __u32 action,
				      const struct csf_meta *m, struct csf_outcome *o, __u32 ifindex,
				      __u32 hook, struct csf_pkt *pp, __u32 parsed)
{
	csf_apply_pkt(ctx, xdp, action, m, o, pp, parsed);
	csf_flow_note(pp, ifindex, hook, o);
}

/* The policy's action for this packet (a rule may override the interface's), then the action
 * applied. The parsed headers live in csf_pkt_map. */
static __always_inline void csf_decide(void *ctx, const bool xdp, __u32 ifindex, __u32 hook,
				       __u32 active, __u32 *action, struct csf_meta *m,
				       struct csf_outcome *o, struct csf_counters *c)
{
	__u32 zero = 0;
	struct csf_pkt *p = bpf_map_lookup_elem(&csf_pkt_map, &zero);
	if (!p)
		return;
	__builtin_memset(p, 0, sizeof(*p));
	__u32 parsed = CSF_NOT_PARSED;
	if (csf_policy(ctx, xdp, ifindex, hook, active, action, p, &parsed))
		c->c[CSF_CTR_POLICY_HIT]++;
	if (*action == CSF_ACT_PASS)
		return;
	if (!xdp) {
		m->is_partial = csf_skb_is_partial(ctx);
		m->is_gso = ((struct __sk_buff *)ctx)->gso_size != 0;
	}
	csf_apply(ctx, xdp, *action, m, o, ifindex, hook, p, parsed);
}

/* Entry. `m` is filled here: the interface's configuration (mechanism, XDP redirect) and, for tc,
 * the kernel's checksum state of the packet, read only when the action needs it. */
static __always_inline void csf_handle(void *ctx, const bool xdp, __u32 hook, struct csf_meta *m,
				       struct csf_outcome *o, __u32 *target_ifindex)
{
	struct csf_if_key key = { .ifindex = csf_ifindex(ctx, xdp), .hook = hook };
	struct csf_slot *slot = csf_slot_get(&key);

	if (!slot)
		return; /* cannot happen (csf_slot_get falls back to a spare slot) */
	const bool has_cfg = slot->has_cfg;
	__u32 action = has_cfg ? slot->cfg.action : CSF_ACT_PASS;

	if (has_cfg) {
		m->mechanism = slot->cfg.mechanism;
		*target_ifindex = slot->cfg.target_ifindex;
		m->xdp_redirect = xdp && (slot->cfg.flags & CSF_IFCFG_F_XDP_REDIRECT);
	}
	if (!xdp && m->mechanism == CSF_MECH_BOUNCE && csf_skb_bounced(ctx)) {
		/* Second pass of a packet the bounce veth completed (it comes back only to an
		 * interface using bounce): it was counted the first time; note its return and let
		 * it go. */
		slot->ctr.c[CSF_CTR_BOUNCE_RETURNED]++;
		return;
	}
	if (action >= CSF_ACT_MAX)
		action = CSF_ACT_PASS;
	/* The pass path (action pass, no rule installed) neither parses nor touches the packet. */
	const __u32 active = has_cfg ? csf_policy_active() : 0;
	if (action != CSF_ACT_PASS || active)
		csf_decide(ctx, xdp, key.ifindex, hook, active, &action, m, o, &slot->ctr);
	if (action == CSF_ACT_DROP_BAD)
		o->drop = o->cls == CSF_CLASS_BAD || o->ip4_bad;
	/* (o->drop may also be set by a pure-BPF fill that could not restore a trimmed packet.) */
	csf_count(&slot->ctr, csf_frame_len(ctx, xdp), action, o);
	if (xdp)
		return;
	/* The hand-off (csf_fill_kernel_partial), by mechanism. */
	if (m->mechanism == CSF_MECH_BOUNCE) {
		o->redirect = o->handoff;
		slot->ctr.c[CSF_CTR_BOUNCED] += o->handoff;
	} else if (m->mechanism == CSF_MECH_IFB && slot->cfg.target_ifindex) {
		/* Into the ifb ourselves, no selector: where the kernel lets bpf_redirect hand a
		 * packet to an ifb (it must be marked redirected, as mirred does; the probe tries
		 * it, userspace/control/probe.cc). */
		o->redirect = o->handoff;
		slot->ctr.c[CSF_CTR_ACT_SELECTED] += o->handoff;
	} else if (m->mechanism == CSF_MECH_ACT_CSUM || m->mechanism == CSF_MECH_IFB) {
		((struct __sk_buff *)ctx)->cb[CSF_CB_SELECT] = o->handoff ? CSF_CB_SELECT_FILL : 0;
	}
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * csumfix ABI: the ONE header shared by the BPF programs (bpf/) and the C++ control plane and
 * reference (userspace/). Plain C, fixed-width types, explicit padding, no bool/enum/long, so that
 * the layout is identical for clang -target bpf and for x86-64 g++. Layout is checked twice:
 * static_asserts in tests/unit/abi_test.cc and a comparison against the BTF of the built .bpf.o
 * (tests/bpf/btf_abi_test.cc).
 *
 * Semantics of classes and actions are specified in docs/SEMANTICS.md; the reference
 * (userspace/refcsum) and the BPF programs implement them independently.
 */
#ifndef CSUMFIX_ABI_H
#define CSUMFIX_ABI_H

#ifdef __bpf__
/* vmlinux.h (included first by every .bpf.c) provides __u8.. __u64. */
#else
#include <linux/types.h>
#endif

#define CSF_ABI_VERSION 1

/* ---- Hooks (the "direction" part of a counter key) ---- */
#define CSF_HOOK_TC_INGRESS 0
#define CSF_HOOK_TC_EGRESS 1
#define CSF_HOOK_XDP 2
#define CSF_HOOK_MAX 3

/* ---- Policy actions ---- */
#define CSF_ACT_PASS 0      /* leave alone: no parsing, only the packet is counted            */
#define CSF_ACT_OBSERVE 1   /* classify by headers only (partial/zero/gso/na/unparsable)      */
#define CSF_ACT_VERIFY 2    /* full classification incl. valid/bad; never modifies or drops   */
#define CSF_ACT_DROP_BAD 3  /* verify + drop BAD L4 checksum or bad IPv4 header checksum      */
#define CSF_ACT_FILL 4      /* verify + complete partial checksums                            */
#define CSF_ACT_ZERO_UDP4 5 /* verify + partial UDP over IPv4 gets checksum 0 ("none")        */
#define CSF_ACT_MAX 6

/* ---- Checksum classes (exactly one per packet, except with CSF_ACT_PASS) ---- */
#define CSF_CLASS_NONE 0        /* not classified (action pass)                              */
#define CSF_CLASS_VALID 1       /* L4 checksum verifies                                      */
#define CSF_CLASS_PARTIAL 2     /* kernel says CHECKSUM_PARTIAL, or field == pseudo seed      */
#define CSF_CLASS_BAD 3         /* wrong checksum (incl. zero where zero is forbidden)        */
#define CSF_CLASS_ZERO 4        /* UDP over IPv4 with checksum 0 ("no checksum")              */
#define CSF_CLASS_NA 5          /* no L4 checksum to check: non-IP, other protocol, fragment  */
#define CSF_CLASS_UNPARSABLE 6  /* truncated or malformed headers                             */
#define CSF_CLASS_GSO 7         /* GSO super-frame: left to segmentation                      */
#define CSF_CLASS_UNVERIFIED 8  /* observe only: not partial, checksum not computed           */
#define CSF_CLASS_MAX 9

/* ---- Counter ids: index into struct csf_counters.c[] ---- */
#define CSF_CTR_PACKETS 0
#define CSF_CTR_BYTES 1
#define CSF_CTR_CLASS_BASE 2 /* CSF_CTR_CLASS_BASE + CSF_CLASS_x                               */
#define CSF_CTR_ACTION_BASE (CSF_CTR_CLASS_BASE + CSF_CLASS_MAX) /* + CSF_ACT_x: action applied */
#define CSF_CTR_FILLED (CSF_CTR_ACTION_BASE + CSF_ACT_MAX)        /* checksum written          */
#define CSF_CTR_ZEROED (CSF_CTR_FILLED + 1)      /* UDP4 checksum set to 0 by zero-udp4         */
#define CSF_CTR_DROPPED (CSF_CTR_FILLED + 2)     /* dropped by drop-bad                         */
#define CSF_CTR_IP4_HDR_BAD (CSF_CTR_FILLED + 3) /* IPv4 header checksum wrong                  */
#define CSF_CTR_FILL_ERROR (CSF_CTR_FILLED + 4)  /* fill wanted but a helper failed: unchanged  */
#define CSF_CTR_BOUNCED (CSF_CTR_FILLED + 5)     /* PARTIAL sent through the bounce veth       */
#define CSF_CTR_BOUNCE_RETURNED (CSF_CTR_FILLED + 6) /* came back completed: not counted again */
#define CSF_CTR_POLICY_HIT (CSF_CTR_FILLED + 7)  /* the action came from a policy rule          */
#define CSF_CTR_ACT_SELECTED (CSF_CTR_FILLED + 8) /* act-csum / ifb: handed to act_csum or the ifb */
#define CSF_CTR_MAX (CSF_CTR_FILLED + 9)

/* ---- Maps ---- */
/* Key of csf_counters (per-CPU hash) and of csf_ifcfg (hash). */
struct csf_if_key {
	__u32 ifindex;
	__u32 hook; /* CSF_HOOK_* */
};

struct csf_counters {
	__u64 c[CSF_CTR_MAX];
};

/* Value of csf_ifcfg: what an attachment does by default. A missing entry means CSF_ACT_PASS. */
struct csf_ifcfg {
	__u32 action;         /* CSF_ACT_* */
	__u32 flags;          /* CSF_IFCFG_F_* */
	__u32 mechanism;      /* CSF_MECH_*: how a fill clears the kernel's CHECKSUM_PARTIAL */
	__u32 target_ifindex; /* tc + CSF_MECH_BOUNCE: the veth PARTIAL packets leave by;
			       * tc + CSF_MECH_IFB: the ifb the program redirects them into
			       * itself (0: the classic selector's mirred action does);
			       * XDP + CSF_IFCFG_F_XDP_REDIRECT: where frames are redirected */
};
#define CSF_IFCFG_F_NONE 0
/* XDP: redirect every frame not dropped to target_ifindex. Seeds are completed there (the frame
 * leaves without checksum metadata), never on XDP_PASS. */
#define CSF_IFCFG_F_XDP_REDIRECT 1

/* Value of csf_slots (per-CPU hash, key csf_if_key): one lookup gives a packet everything its
 * attachment needs. The counters, and this CPU's copy of the csf_ifcfg entry, taken when
 * csf_cfg_gen last changed: userspace changes csf_ifcfg, then writes a new csf_cfg_gen, and each
 * CPU's copy is taken again by the next packet there (docs/OPERATIONS.md). Userspace never
 * writes a slot, so the counters lose no increment; it sums ctr over the CPUs. */
struct csf_slot {
	struct csf_counters ctr;
	struct csf_ifcfg cfg; /* valid when has_cfg */
	__u32 has_cfg;        /* csf_ifcfg had an entry for the key */
	__u32 pad;
	__u64 gen;            /* csf_cfg_gen.gen when cfg was copied (0: never, or none written) */
};

/* Value of csf_cfg_gen (1-entry array): any new value makes every slot copy its csf_ifcfg entry
 * again. Userspace writes a random non-zero value after each change of csf_ifcfg and at every
 * load (bpf::Programs::Load): writers need no lock, and a value is never reused. 0 (none written
 * yet): the programs read csf_ifcfg for every packet. */
struct csf_cfg_gen {
	__u64 gen;
};

/* ---- Fill mechanisms (README "Fill mechanisms"; chosen by `csumfix probe`) ----
 * A packet the kernel holds as CHECKSUM_PARTIAL must get its checksum AND lose that state,
 * otherwise a later completion would checksum the checksum. Packets that are not PARTIAL in the
 * kernel (seed only in the bytes) are filled in place by every mechanism. */
#define CSF_MECH_OBSERVE 0 /* never fill kernel-PARTIAL packets: classify and count only       */
#define CSF_MECH_BPF 1     /* pure BPF: trim below the field with bpf_skb_change_tail, regrow  */
#define CSF_MECH_ACT_CSUM 2 /* a classic act_csum behind the csumfix selector                  */
#define CSF_MECH_BOUNCE 3  /* out of a tx-csum-off veth (the core completes it) and back        */
#define CSF_MECH_IFB 4     /* tc ingress only: the csumfix selector + mirred to a tx-csum-off ifb,
			    * which completes it and hands it back to the interface's ingress     */
#define CSF_MECH_MAX 5

/* csf_bounce: key = ifindex of the bounce veth end that receives completed packets. */
struct csf_bounce_ret {
	__u32 target_ifindex; /* where the packet goes back to */
	__u32 hook;           /* CSF_HOOK_TC_INGRESS: back into its ingress; EGRESS: out of it */
};

/* A packet that went through the bounce veth comes back CHECKSUM_UNNECESSARY with csum_level 3
 * (true: it was just completed; no driver reports level 3 for a plain packet). The attached
 * program recognises it by that and lets it pass uncounted a second time. */
#define CSF_BOUNCE_CSUM_LEVEL 3

#define CSF_MAX_IFACES 1024

/* ---- Per-flow policy (docs/POLICY.md) ----
 * Tuple-space search: rules are grouped by the set of fields they match and the prefix lengths
 * ("masks", at most CSF_POL_MAX_MASKS); a packet costs one hash lookup per mask, whatever the
 * number of rules. Port ranges are expanded into exact ports. Two generations let an update be
 * written aside and switched in with one 4-byte write (csf_pol_active), so a packet sees either
 * the whole old or the whole new policy (the old one is removed only after a grace period). */
#define CSF_POL_MAX_MASKS 16
#define CSF_POL_MAX_ENTRIES 262144
#define CSF_POL_MAX_RULES 100000
#define CSF_POL_F_IFINDEX 0x01
#define CSF_POL_F_HOOK 0x02
#define CSF_POL_F_IPVER 0x04
#define CSF_POL_F_PROTO 0x08
#define CSF_POL_F_SPORT 0x10
#define CSF_POL_F_DPORT 0x20

/* csf_pol_masks: array of 2 * CSF_POL_MAX_MASKS, generation g uses [g * MAX, g * MAX + count). */
struct csf_pol_mask {
	__u32 flags;  /* CSF_POL_F_* */
	__u8 src_len; /* prefix lengths (0 = any); for IPv4 at most 32 */
	__u8 dst_len;
	__u8 ipver;   /* 4 or 6 when the mask matches addresses; 0 otherwise */
	__u8 used;    /* 0: empty slot, skipped */
	__u8 src_mask[16]; /* the prefix lengths as byte masks (so BPF only ANDs) */
	__u8 dst_mask[16];
};

/* csf_pol_active[0]: one aligned 4-byte word, so switching generations is a single store. */
struct csf_pol_active {
	__u32 active; /* 0: no policy (default actions only); 1 + generation otherwise */
	__u32 pad;
};

/* What identifies a flow at a hook: the policy key (under a mask) and the flow table's key. */
struct csf_tuple {
	__u32 ifindex;
	__u8 hook;
	__u8 ipver;
	__u8 proto;
	__u8 pad;
	__u16 sport; /* host order */
	__u16 dport;
	__u8 src[16]; /* IPv4 in the first 4 bytes, the rest zero */
	__u8 dst[16];
};

/* csf_pol_rules: key = the packet's tuple under one mask (fields outside the mask are zero). */
struct csf_pol_key {
	__u32 gen_mask; /* generation << 8 | mask index */
	struct csf_tuple t;
};

struct csf_pol_val {
	__u32 action;   /* CSF_ACT_* */
	__u32 priority; /* lower wins; ties: lower rule id */
	__u32 rule_id;
	__u32 pad;
};

/* csf_pol_store: the rules as written (userspace only; for `policy list` and rebuilds). */
struct csf_pol_rule {
	__u32 id;
	__u32 priority;
	__u32 action;
	__u32 flags;   /* CSF_POL_F_* */
	__u32 ifindex;
	__u8 hook;
	__u8 ipver;
	__u8 proto;
	__u8 src_len;
	__u8 dst_len;
	__u8 pad[3];
	__u16 sport_lo, sport_hi;
	__u16 dport_lo, dport_hi;
	__u8 src[16];
	__u8 dst[16];
};

/* ---- Per-flow observation: csf_flows, an LRU hash (key struct csf_tuple) of the flows seen with
 * partial or bad checksums ---- */
#define CSF_FLOWS_MAX 65536

struct csf_flow_val {
	__u64 partial; /* packets seen partial */
	__u64 bad;     /* packets with a wrong checksum */
	__u64 filled;  /* packets csumfix completed */
	__u64 last_ns; /* bpf_ktime_get_ns() of the last update */
};

/* ---- Pins (relative to the bpffs mount, normally /sys/fs/bpf) ----
 * One directory per network namespace, named by the inode of its nsfs file (/proc/PID/ns/net):
 * csumfix/v1/netns/<ino>/maps/<map name>      the shared maps below, one set per namespace
 * csumfix/v1/netns/<ino>/<ifname>/state       1-entry array of struct csf_attach_state
 * csumfix/v1/netns/<ino>/<ifname>/<hook>_prog the program attached at that hook
 * csumfix/v1/netns/<ino>/<ifname>/<hook>_link its bpf_link (tcx, XDP); absent for clsact
 * csumfix/v1/netns/<ino>/<ifname>/<hook>_act_prog  act-csum: the selector of its filter
 * csumfix/v1/netns/<ino>/<ifname>/bounce_<dir>_prog, _link  bounce: the return program
 * (csumfix 0.1 kept maps/ and <ifname>/ right under csumfix/v1/; csumfix moves them.)
 * Only userspace reads these; they live here so that every tool agrees on them. */
#define CSF_PIN_ROOT "csumfix/v1"
#define CSF_PIN_NETNS "netns"
/* maps/csf_pol_ifnames: rule id -> struct csf_pol_ifname, the name a rule bound to an interface
 * (--iface) was given; userspace only (the programs match the ifindex), made by csumfix on first
 * use, so that the rule follows that name when the interface is made again. */
#define CSF_PIN_POL_IFNAMES "csf_pol_ifnames"
struct csf_pol_ifname {
	char ifname[16]; /* IFNAMSIZ, NUL-padded */
};
#define CSF_PIN_MAPS "maps"
#define CSF_PIN_STATE "state"
/* maps/csf_abi: 1-entry array of __u32, the CSF_ABI_VERSION of the map set, made by userspace
 * with maps/ (absent: made by a build before the marker, which were all ABI 1). */
#define CSF_PIN_ABI "csf_abi"
/* A pin replaced in place is pinned as <name>_new first, then renamed over <name>. */
#define CSF_PIN_TMP_SUFFIX "_new"

/* The pinned shared maps, by the C name of their definition in bpf/lib/maps.h (libbpf pins a map
 * under its name). tests/bpf/btf_abi_test.cc checks that the object pins exactly these. */
#define CSF_MAP_IFCFG "csf_ifcfg"           /* csf_if_key -> csf_ifcfg: action per hook        */
#define CSF_MAP_SLOTS "csf_slots"           /* csf_if_key -> per-CPU csf_slot: counters, cfg   */
#define CSF_MAP_CFG_GEN "csf_cfg_gen"       /* the generation of csf_ifcfg                     */
/* Made by csumfix 0.1 (csf_if_key -> per-CPU csf_counters), no longer by the programs: where it is
 * still pinned, its counts (from programs of before an upgrade) are added to csf_slots'. */
#define CSF_MAP_LEGACY_COUNTERS "csf_counters"
#define CSF_MAP_BOUNCE "csf_bounce"         /* bounce return ifindex -> csf_bounce_ret         */
#define CSF_MAP_FLOWS "csf_flows"           /* csf_tuple -> csf_flow_val (LRU)                 */
#define CSF_MAP_POL_ACTIVE "csf_pol_active" /* the active policy generation                    */
#define CSF_MAP_POL_MASKS "csf_pol_masks"   /* generation x mask slot -> csf_pol_mask          */
#define CSF_MAP_POL_RULES "csf_pol_rules"   /* csf_pol_key -> csf_pol_val (tuple-space tables) */
#define CSF_MAP_POL_STORE "csf_pol_store"   /* rule id -> csf_pol_rule, as the user wrote it   */
#define CSF_PINNED_MAPS                                                                      \
	{ CSF_MAP_IFCFG, CSF_MAP_SLOTS, CSF_MAP_CFG_GEN, CSF_MAP_BOUNCE, CSF_MAP_FLOWS,         \
	  CSF_MAP_POL_ACTIVE, CSF_MAP_POL_MASKS, CSF_MAP_POL_RULES, CSF_MAP_POL_STORE }

/* How a tc hook was attached (csf_attach_state.tc_mode[]). */
#define CSF_TC_MODE_NONE 0
#define CSF_TC_MODE_TCX 1    /* tcx bpf_link (6.6+)                                  */
#define CSF_TC_MODE_CLSACT 2 /* clsact qdisc + cls_bpf direct-action filter          */
#define CSF_XDP_MODE_NONE 0
#define CSF_XDP_MODE_LINK 1

/* csf_attach_state.flags */
#define CSF_STATE_F_CLSACT_CREATED 1 /* the attach created the clsact qdisc: detach deletes it
				      * when no filter is left in it */

struct csf_attach_state {
	__u32 abi_version; /* CSF_ABI_VERSION */
	__u32 ifindex;
	__u32 flags;       /* CSF_STATE_F_* */
	__u32 mode[CSF_HOOK_MAX]; /* per hook: CSF_TC_MODE_* or CSF_XDP_MODE_* */
	__u32 prog_id[CSF_HOOK_MAX];
	__u32 tc_handle;   /* clsact filters: handle and priority */
	__u32 tc_priority;
	__u32 mechanism;   /* CSF_MECH_* */
	__u32 bounce_ifindex[CSF_HOOK_MAX];  /* CSF_MECH_BOUNCE: veth end packets leave by */
	__u32 bounce_peer_ifindex[CSF_HOOK_MAX]; /* ... and the end they come back on */
	__u32 bounce_mode[CSF_HOOK_MAX];     /* how the return program is attached */
	__u32 bounce_prog_id[CSF_HOOK_MAX];
	__u32 act_prog_id[CSF_HOOK_MAX]; /* CSF_MECH_ACT_CSUM / CSF_MECH_IFB: selector program of
					  * the classic cls_bpf filter (priority tc_priority + 1)
					  * whose action is act_csum / mirred to the ifb */
	__u32 ifb_ifindex; /* CSF_MECH_IFB: the interface's own ifb device (0 in older records,
			    * where this was padding) */
	/* The network namespace the interface was in (inode of /proc/self/ns/net at attach); 0 in
	 * records of csumfix 0.1, which were shorter: reading one leaves it 0 ("unknown"). */
	__u64 netns_ino;
};

/* `csumfix probe`: what csf_probe_tail saw when trimming a PARTIAL skb below its checksum field
 * with bpf_skb_change_tail (the "pure BPF" fill needs the trim to clear CHECKSUM_PARTIAL). */
struct csf_probe_result {
	__u32 seen;           /* a PARTIAL UDP packet reached the probe */
	__s32 trim_ret;       /* bpf_skb_change_tail(len below the field) return value */
	__u32 summed_after;   /* ip_summed after the trim (0 NONE ... 3 PARTIAL) */
	__s32 regrow_ret;     /* growing back */
};

#endif /* CSUMFIX_ABI_H */

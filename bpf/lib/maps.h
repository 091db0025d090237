/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map of csumfix.bpf.o but csf_pkt_map (lib/pipeline.h, per-CPU parsed headers). Keys and
 * values are in include/csumfix/abi.h, except the scratch buffers, which only BPF sees.
 *
 * The shared maps are pinned under <bpffs>/csumfix/v1/maps/ by their C name (the pin path is
 * bpf_map__name(), userspace/bpf/loader.cc), and the C++ control plane opens them by those names
 * (userspace/control/): renaming one here renames its pin. The others are private to each loaded
 * object and never pinned. */
#ifndef CSUMFIX_BPF_LIB_MAPS_H
#define CSUMFIX_BPF_LIB_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "csumfix/abi.h"

/* csf_loop(MAX, N, CB, CTX): CB(i, CTX) for i in [0, N) until CB returns non-zero; N <= MAX.
 * bpf_loop (5.17+) in the main object; in the compat object (CSF_COMPAT, for kernels without
 * bpf_loop, docs/KERNELS.md) a bounded loop, which the verifier walks iteration by iteration:
 * there MAX must stay small, and the long walks (lib/csum.h) are global functions, each
 * verified once whatever calls it. */
#ifdef CSF_COMPAT
#define csf_loop(max, n, cb, ctx)                                      \
	do {                                                           \
		for (__u32 csf_i = 0; csf_i < (max); csf_i++) {        \
			if (csf_i >= (__u32)(n) || (cb)(csf_i, (ctx))) \
				break;                                 \
		}                                                      \
	} while (0)
#else
#define csf_loop(max, n, cb, ctx) bpf_loop((n), (cb), (ctx), 0)
#endif

/* ---- Per-CPU scratch buffers (not pinned) ---- */

#define CSF_CHUNK 512 /* bytes summed per loop step (lib/csum.h) */

struct csf_scratch {
	__u8 buf[CSF_CHUNK + 4];
};

/* Not pinned: one chunk of the frame being summed or CRC'd, zero-padded to 4 (lib/csum.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_scratch);
} csf_scratch_map SEC(".maps");

#define CSF_SAVE_CHUNK 4096
#define CSF_SAVE_CHUNKS 16 /* 64 KiB from the checksum field on: any non-GSO packet */

struct csf_save {
	__u8 b[CSF_SAVE_CHUNK];
};

/* Not pinned: the bytes from the checksum field to the end while the pure-BPF fill trims and
 * regrows the packet (lib/fill.h). Per-CPU: tc programs run with migration disabled, and a fill
 * finishes before it returns. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CSF_SAVE_CHUNKS);
	__type(key, __u32);
	__type(value, struct csf_save);
} csf_save_map SEC(".maps");

/* ---- Per-attachment state (pinned) ---- */

/* Pinned as <bpffs>/csumfix/v1/maps/csf_slots: per (ifindex, hook), per CPU, the CSF_CTR_*
 * counters and this CPU's copy of the csf_ifcfg entry (abi.h struct csf_slot; lib/pipeline.h
 * csf_slot_get). userspace sums the counters over the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CSF_MAX_IFACES * CSF_HOOK_MAX);
	__type(key, struct csf_if_key);
	__type(value, struct csf_slot);
} csf_slots SEC(".maps");

/* Not pinned: each CPU's spare slot, for when csf_slots is full (lib/pipeline.h csf_slot_get). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_slot);
} csf_slot_spare SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_cfg_gen: changes after every change of csf_ifcfg. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_cfg_gen);
} csf_cfg_gen SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_ifcfg: per (ifindex, hook), the default action, the fill
 * mechanism and the bounce or XDP redirect target. No entry: pass. Read only when csf_cfg_gen
 * changed: packets use their CPU's copy in csf_slots. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_MAX_IFACES * CSF_HOOK_MAX);
	__type(key, struct csf_if_key);
	__type(value, struct csf_ifcfg);
} csf_ifcfg SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_bounce: bounce mechanism, receiving end of a bounce veth
 * (ifindex) -> where the packet returns to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_MAX_IFACES * 2);
	__type(key, __u32);
	__type(value, struct csf_bounce_ret);
} csf_bounce SEC(".maps");

/* ---- Per-flow policy: tuple-space search (abi.h, docs/POLICY.md; lookup in lib/policy.h) ---- */

/* Pinned as <bpffs>/csumfix/v1/maps/csf_pol_active: the one word that switches generations
 * (0: no policy; 1 + generation otherwise). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_pol_active);
} csf_pol_active SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_pol_masks: the masks of both generations, generation g
 * in [g * CSF_POL_MAX_MASKS, (g + 1) * CSF_POL_MAX_MASKS). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * CSF_POL_MAX_MASKS);
	__type(key, __u32);
	__type(value, struct csf_pol_mask);
} csf_pol_masks SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_pol_rules: the compiled rules, keyed by generation, mask
 * and the tuple under that mask; the value is the rule's action, priority and id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_POL_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct csf_pol_key);
	__type(value, struct csf_pol_val);
} csf_pol_rules SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_flows: the flows seen with partial or bad checksums
 * (LRU), with their partial, bad and filled packet counts and the time of the last one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CSF_FLOWS_MAX);
	__type(key, struct csf_tuple);
	__type(value, struct csf_flow_val);
} csf_flows SEC(".maps");

/* Pinned as <bpffs>/csumfix/v1/maps/csf_pol_store: userspace's copy of the rules as written
 * (never read by the programs). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CSF_POL_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct csf_pol_rule);
} csf_pol_store SEC(".maps");

/* ---- Feature probe (not pinned) ---- */

/* Not pinned: what csf_probe_tail saw (`csumfix probe`, userspace/control/probe.cc reads it through
 * the skeleton of its own throwaway load). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct csf_probe_result);
} csf_probe SEC(".maps");

#endif

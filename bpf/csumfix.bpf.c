// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* csumfix entry points: thin tc and XDP programs over bpf/lib. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/policy.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

static __always_inline int csf_tc(struct __sk_buff *skb, __u32 hook)
{
	struct csf_meta m = {
		.is_partial = csf_skb_is_partial(skb),
		.is_gso = skb->gso_size != 0,
	};
	return csf_handle(skb, false, hook, &m) ? TC_ACT_SHOT : TC_ACT_OK;
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
	struct csf_meta m = {};
	return csf_handle(xdp, true, CSF_HOOK_XDP, &m) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

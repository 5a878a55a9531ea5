// SPDX-License-Identifier: GPL-2.0
/*
 * The network link's net_device (both sides: mkvID on the host, mkv0 in an
 * instance): the glue between the networking core and the Rust link
 * (kernel/multikernel/ikc/net.rs), which owns the frame rings. A link is
 * attached while the other kernel runs (carrier up) and detached when it
 * stops; xmit and the NAPI poll reach it under RCU.
 */
#define pr_fmt(fmt) "multikernel: " fmt

#include <linux/etherdevice.h>
#include <linux/multikernel.h>
#include <linux/netdevice.h>
#include <linux/rcupdate.h>
#include <linux/rtnetlink.h>
#include <linux/virtio_net.h>

static_assert(sizeof(struct virtio_net_hdr) <= MULTIKERNEL_NET_HDR);

/* A received frame up to this long is copied into one buffer, a longer one into pages. */
#define MK_NET_LINEAR	2048
/* The first bytes of a longer frame (headers) go into the buffer, the rest into pages. */
#define MK_NET_HEAD	256

struct mk_net {
	struct net_device *dev;
	struct napi_struct napi;
	void __rcu *link;
};

static int mk_net_open(struct net_device *dev)
{
	struct mk_net *n = netdev_priv(dev);

	napi_enable(&n->napi);
	netif_start_queue(dev);
	local_bh_disable();
	napi_schedule(&n->napi);
	local_bh_enable();
	return 0;
}

static int mk_net_stop(struct net_device *dev)
{
	struct mk_net *n = netdev_priv(dev);

	netif_stop_queue(dev);
	napi_disable(&n->napi);
	return 0;
}

static netdev_tx_t mk_net_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct mk_net *n = netdev_priv(dev);
	struct multikernel_net_part parts[2 + MAX_SKB_FRAGS];
	union {
		struct virtio_net_hdr v;
		u8 bytes[MULTIKERNEL_NET_HDR];
	} hdr = {};
	unsigned int len = skb->len, count = 0, i;
	void *link;
	int ret = -ENOTCONN;

	/* Pieces the device did not offer to take (a frag list) are joined first. */
	if (!skb_frags_readable(skb) || (skb_has_frag_list(skb) && skb_linearize(skb)))
		goto drop;
	/* Offloads (checksum to fill, GSO) travel in the header, as virtio-net's do. */
	if (virtio_net_hdr_from_skb(skb, &hdr.v, true, false, 0))
		goto drop;
	parts[count++] = (struct multikernel_net_part){ hdr.bytes, MULTIKERNEL_NET_HDR };
	parts[count++] = (struct multikernel_net_part){ skb->data, skb_headlen(skb) };
	for (i = 0; i < skb_shinfo(skb)->nr_frags; i++) {
		const skb_frag_t *frag = &skb_shinfo(skb)->frags[i];

		parts[count++] = (struct multikernel_net_part){ skb_frag_address(frag),
								skb_frag_size(frag) };
	}
	rcu_read_lock();
	link = rcu_dereference(n->link);
	if (link)
		ret = multikernel_net_xmit(link, parts, count, MULTIKERNEL_NET_HDR + len);
	if (ret == -EAGAIN) {
		/* Full: stop, unless room appeared meanwhile (the peer rings when it frees some). */
		netif_stop_queue(dev);
		if (!multikernel_net_want_room(link)) {
			rcu_read_unlock();
			return NETDEV_TX_BUSY;
		}
		netif_wake_queue(dev);
		ret = multikernel_net_xmit(link, parts, count, MULTIKERNEL_NET_HDR + len);
	}
	rcu_read_unlock();
	if (ret)
		goto drop;
	dev_sw_netstats_tx_add(dev, 1, len);
	dev_consume_skb_any(skb);
	return NETDEV_TX_OK;
drop:
	dev_core_stats_tx_dropped_inc(dev);
	dev_kfree_skb_any(skb);
	return NETDEV_TX_OK;
}

static int mk_net_change_mtu(struct net_device *dev, int mtu)
{
	WRITE_ONCE(dev->mtu, mtu);
	return 0;
}

static const struct net_device_ops mk_net_ops = {
	.ndo_open		= mk_net_open,
	.ndo_stop		= mk_net_stop,
	.ndo_start_xmit		= mk_net_xmit,
	.ndo_change_mtu		= mk_net_change_mtu,
	.ndo_get_stats64	= dev_get_tstats64,
	.ndo_set_mac_address	= eth_mac_addr,
	.ndo_validate_addr	= eth_validate_addr,
};

/* A frame from the other kernel that no correct peer sends: dropped and counted. */
static void mk_net_rx_bad(struct mk_net *n, bool length, const char *why)
{
	DEV_STATS_INC(n->dev, rx_errors);
	if (length)
		DEV_STATS_INC(n->dev, rx_length_errors);
	else
		DEV_STATS_INC(n->dev, rx_frame_errors);
	if (net_ratelimit())
		netdev_warn(n->dev, "dropped a malformed frame from the other kernel: %s\n", why);
}

/*
 * A frame the link took from its ring (NAPI poll, softirq): @data is this
 * kernel's copy (the peer cannot change it any more), header first.
 */
void multikernel_net_rx(void *ctx, const u8 *data, u32 len)
{
	struct mk_net *n = ctx;
	struct virtio_net_hdr hdr;
	struct sk_buff *skb;
	int err;

	if (len < MULTIKERNEL_NET_HDR + ETH_HLEN) {
		mk_net_rx_bad(n, true, "shorter than its header and an Ethernet header");
		return;
	}
	memcpy(&hdr, data, sizeof(hdr));
	data += MULTIKERNEL_NET_HDR;
	len -= MULTIKERNEL_NET_HDR;
	if (len <= MK_NET_LINEAR) {
		skb = napi_alloc_skb(&n->napi, len);
		if (skb)
			skb_put_data(skb, data, len);
	} else {
		/* Headers in the buffer (more are pulled if needed), the rest in pages. */
		skb = alloc_skb_with_frags(NET_SKB_PAD + NET_IP_ALIGN + MK_NET_HEAD, len - MK_NET_HEAD,
					   PAGE_ALLOC_COSTLY_ORDER, &err, GFP_ATOMIC);
		if (skb) {
			skb_reserve(skb, NET_SKB_PAD + NET_IP_ALIGN);
			skb_put(skb, MK_NET_HEAD);
			skb->data_len = len - MK_NET_HEAD;
			skb->len += len - MK_NET_HEAD;
			skb->dev = n->dev;
			if (skb_store_bits(skb, 0, data, len)) {
				kfree_skb(skb);
				skb = NULL;
			}
		}
	}
	if (!skb) {
		dev_core_stats_rx_dropped_inc(n->dev);
		return;
	}
	/* Checked as tun checks what user space writes: offsets inside the frame, known GSO. */
	if (virtio_net_hdr_to_skb(skb, &hdr, true)) {
		mk_net_rx_bad(n, false, "bad offload header");
		kfree_skb(skb);
		return;
	}
	skb->protocol = eth_type_trans(skb, n->dev);
	dev_sw_netstats_rx_add(n->dev, len);
	napi_gro_receive(&n->napi, skb);
}

static int mk_net_poll(struct napi_struct *napi, int budget)
{
	struct mk_net *n = container_of(napi, struct mk_net, napi);
	void *link;
	int done = 0;

	rcu_read_lock();
	link = rcu_dereference(n->link);
	if (link)
		done = multikernel_net_poll(link, n, budget);
	if (done < budget && napi_complete_done(napi, done) && link &&
	    multikernel_net_rearm(link))
		napi_schedule(napi);
	rcu_read_unlock();
	return done;
}

void *multikernel_net_create(const char *name, const u8 *mac)
{
	struct net_device *dev;
	struct mk_net *n;
	int ret;

	dev = alloc_netdev(sizeof(*n), name, NET_NAME_USER, ether_setup);
	if (!dev)
		return ERR_PTR(-ENOMEM);
	n = netdev_priv(dev);
	n->dev = dev;
	RCU_INIT_POINTER(n->link, NULL);
	dev->netdev_ops = &mk_net_ops;
	dev->pcpu_stat_type = NETDEV_PCPU_STAT_TSTATS;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = 65535;
	/*
	 * Both ends are in the same machine: a checksum is left to whoever
	 * leaves it (or nobody), a TCP or UDP stream goes in frames of up to
	 * 64 KiB (the other side segments it only if it forwards it).
	 */
	dev->hw_features = NETIF_F_SG | NETIF_F_HW_CSUM | NETIF_F_HIGHDMA | NETIF_F_TSO |
			   NETIF_F_TSO6 | NETIF_F_TSO_ECN | NETIF_F_GSO_UDP_L4;
	/*
	 * GSO from an untrusted source (the other kernel's, forwarded) goes on
	 * as it is: the next receiver checks it again.
	 */
	dev->features = dev->hw_features | NETIF_F_GSO_ROBUST;
	dev->vlan_features = dev->features;
	dev->priv_flags |= IFF_LIVE_ADDR_CHANGE;
	eth_hw_addr_set(dev, mac);
	netif_napi_add(dev, &n->napi, mk_net_poll);
	netif_carrier_off(dev);
	ret = register_netdev(dev);
	if (ret) {
		netif_napi_del(&n->napi);
		free_netdev(dev);
		return ERR_PTR(ret);
	}
	return n;
}

void multikernel_net_destroy(void *ctx, void (*unregistered)(void *), void *data)
{
	struct mk_net *n = ctx;
	struct net_device *dev = n->dev;

	rtnl_lock();
	unregister_netdevice(dev);
	/*
	 * Closed, out of the namespace and of sysfs: none of its operations
	 * runs again (its NAPI context was disabled when it closed) and its
	 * name is free. What is left is memory: rtnl_unlock() waits for every
	 * pending RCU callback (rcu_barrier() in netdev_run_todo(), 13-22 ms of
	 * a 1-CPU instance's create+destroy under TCG, reservation.rst,
	 * "Numbers"), and free_netdev() deletes the NAPI context (another
	 * grace period) and frees the rest. A caller that said so is told
	 * before all that, which it need not wait for.
	 */
	if (unregistered)
		unregistered(data);
	rtnl_unlock();
	free_netdev(dev);
}

/* The other kernel runs: frames go through @link (carrier up). */
void multikernel_net_attach(void *ctx, void *link)
{
	struct mk_net *n = ctx;

	rcu_assign_pointer(n->link, link);
	netif_carrier_on(n->dev);
	netif_wake_queue(n->dev);
	multikernel_net_kick(ctx, true);
}

/* It stopped: carrier down; no xmit or poll uses the link once this returns. */
void multikernel_net_detach(void *ctx)
{
	struct mk_net *n = ctx;

	netif_carrier_off(n->dev);
	RCU_INIT_POINTER(n->link, NULL);
	synchronize_net();
}

/* The peer broke the link's rings: carrier down until the next run (any context). */
void multikernel_net_broken(void *ctx)
{
	struct mk_net *n = ctx;

	netif_carrier_off(n->dev);
}

static void mk_net_kick(struct mk_net *n, bool frames)
{
	if (frames)
		napi_schedule(&n->napi);
	if (netif_running(n->dev) && netif_queue_stopped(n->dev) && netif_carrier_ok(n->dev))
		netif_wake_queue(n->dev);
}

/*
 * A doorbell (hard interrupt), or the channel's heartbeat work looking for
 * one that was lost (a throttled doorbell vector): @frames wait (the poll is
 * scheduled), or room may have appeared (a stopped queue wakes). From
 * process context bottom halves go off around it, so the softirq it raises
 * runs right away.
 */
void multikernel_net_kick(void *ctx, bool frames)
{
	struct mk_net *n = ctx;

	if (in_hardirq() || irqs_disabled()) {
		mk_net_kick(n, frames);
		return;
	}
	local_bh_disable();
	mk_net_kick(n, frames);
	local_bh_enable();
}

/*
 * Fault injection (testing only): sends the other kernel three frames that
 * no correct peer sends, which it must drop and count: one shorter than its
 * headers (a length error), one whose checksum to fill lies outside it and
 * one of an unknown GSO type (frame errors). -ENOTCONN without a link,
 * -EOPNOTSUPP without CONFIG_MULTIKERNEL_IKC_FAULT_INJECT.
 */
int multikernel_net_inject(void *ctx)
{
	struct mk_net *n = ctx;
	static const u8 shortf[5] = { 1, 2, 3, 4, 5 };
	struct {
		union {
			struct virtio_net_hdr v;
			u8 bytes[MULTIKERNEL_NET_HDR];
		} hdr;
		struct ethhdr eth;
		u8 payload[46];
	} __packed bad[2] = {};
	struct multikernel_net_part part;
	void *link;
	int i, ret = -ENOTCONN;

	if (!IS_ENABLED(CONFIG_MULTIKERNEL_IKC_FAULT_INJECT))
		return -EOPNOTSUPP;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		eth_broadcast_addr(bad[i].eth.h_dest);
		ether_addr_copy(bad[i].eth.h_source, n->dev->dev_addr);
		bad[i].eth.h_proto = htons(ETH_P_IP);
	}
	bad[0].hdr.v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	bad[0].hdr.v.csum_start = __cpu_to_virtio16(true, 60000);
	bad[0].hdr.v.csum_offset = __cpu_to_virtio16(true, 6);
	bad[1].hdr.v.gso_type = 0x42;
	bad[1].hdr.v.gso_size = __cpu_to_virtio16(true, 100);
	local_bh_disable();
	rcu_read_lock();
	link = rcu_dereference(n->link);
	if (link) {
		part = (struct multikernel_net_part){ shortf, sizeof(shortf) };
		ret = multikernel_net_xmit(link, &part, 1, part.len);
		for (i = 0; !ret && i < ARRAY_SIZE(bad); i++) {
			part = (struct multikernel_net_part){ &bad[i], sizeof(bad[i]) };
			ret = multikernel_net_xmit(link, &part, 1, part.len);
		}
	}
	rcu_read_unlock();
	local_bh_enable();
	return ret;
}

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
	unsigned int len = skb->len;
	void *link;
	int ret = -ENOTCONN;

	if (skb_linearize(skb))
		goto drop;
	rcu_read_lock();
	link = rcu_dereference(n->link);
	if (link)
		ret = multikernel_net_xmit(link, skb->data, len);
	if (ret == -EAGAIN) {
		/* Full: stop, unless room appeared meanwhile (the peer rings when it frees some). */
		netif_stop_queue(dev);
		if (!multikernel_net_want_room(link)) {
			rcu_read_unlock();
			return NETDEV_TX_BUSY;
		}
		netif_wake_queue(dev);
		ret = multikernel_net_xmit(link, skb->data, len);
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

/* A frame the link took from its ring (NAPI poll, softirq). */
void multikernel_net_rx(void *ctx, const u8 *data, u32 len)
{
	struct mk_net *n = ctx;
	struct sk_buff *skb;

	if (len < ETH_HLEN) {
		dev_core_stats_rx_dropped_inc(n->dev);
		return;
	}
	skb = napi_alloc_skb(&n->napi, len);
	if (!skb) {
		dev_core_stats_rx_dropped_inc(n->dev);
		return;
	}
	skb_put_data(skb, data, len);
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

void multikernel_net_destroy(void *ctx)
{
	struct mk_net *n = ctx;
	struct net_device *dev = n->dev;

	unregister_netdev(dev);
	netif_napi_del(&n->napi);
	free_netdev(dev);
}

/* The other kernel runs: frames go through @link (carrier up). */
void multikernel_net_attach(void *ctx, void *link)
{
	struct mk_net *n = ctx;

	rcu_assign_pointer(n->link, link);
	netif_carrier_on(n->dev);
	netif_wake_queue(n->dev);
	multikernel_net_kick(ctx);
}

/* It stopped: carrier down; no xmit or poll uses the link once this returns. */
void multikernel_net_detach(void *ctx)
{
	struct mk_net *n = ctx;

	netif_carrier_off(n->dev);
	RCU_INIT_POINTER(n->link, NULL);
	synchronize_net();
}

static void mk_net_kick(struct mk_net *n)
{
	napi_schedule(&n->napi);
	if (netif_running(n->dev) && netif_queue_stopped(n->dev) && netif_carrier_ok(n->dev))
		netif_wake_queue(n->dev);
}

/*
 * A doorbell (hard interrupt), or the channel's heartbeat work looking for
 * one that was lost (a throttled doorbell vector): frames may wait, or room
 * may have appeared. From process context bottom halves go off around it,
 * so the softirq it raises runs right away.
 */
void multikernel_net_kick(void *ctx)
{
	struct mk_net *n = ctx;

	if (in_hardirq() || irqs_disabled()) {
		mk_net_kick(n);
		return;
	}
	local_bh_disable();
	mk_net_kick(n);
	local_bh_enable();
}

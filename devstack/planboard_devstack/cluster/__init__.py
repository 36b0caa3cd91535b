"""A one-node Kubernetes cluster that runs the chart's real Pods (``make test-cluster``).

``tools`` installs and builds what it runs (cached), ``host`` owns every change it makes to
the machine and its undo, ``node`` brings it up in a network namespace. ``python -m
planboard_devstack.cluster`` builds the tools (``tools``), runs a cluster until Ctrl-C for
debugging (``up``) and cleans up after a crashed run (``down``). See docs/cluster.md.
"""

from planboard_devstack.cluster.node import NODE_IP, NodeCluster
from planboard_devstack.cluster.tools import ClusterTools, Images, build_images, ensure_tools

__all__ = ["NODE_IP", "ClusterTools", "Images", "NodeCluster", "build_images", "ensure_tools"]

"""A one-node Kubernetes cluster that runs the chart's real Pods (``make test-cluster``).

``tools`` installs and builds what it runs (cached) and its images.
"""

from planboard.devstack.cluster.tools import ClusterTools, Images, build_images, ensure_tools

__all__ = ["ClusterTools", "Images", "build_images", "ensure_tools"]

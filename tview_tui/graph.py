"""The dependency graph: relations and TVIEWs as nodes, "is read by" as edges.

Built with networkx from the catalog's edges; used for the detail screen's trees
(upstream: what a TVIEW reads, transitively; downstream: where its changes cascade to).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .catalog import Dependency


@dataclass
class TreeNode:
    """A node of an upstream/downstream tree, ready for a Tree widget."""

    name: str
    kind: str            # table | tview
    lineage: str | None  # how changes travel along the edge to its parent
    children: list[TreeNode] = field(default_factory=list)


def build(edges: list[Dependency]) -> nx.DiGraph:
    """source -> tview edges, with each node's kind and each edge's lineage."""
    graph = nx.DiGraph()
    for dep in edges:
        graph.add_node(dep.tview, kind="tview")
        if dep.source not in graph or graph.nodes[dep.source].get("kind") != "tview":
            graph.add_node(dep.source, kind=dep.source_kind)
        graph.add_edge(dep.source, dep.tview, lineage=dep.lineage)
    return graph


def upstream(graph: nx.DiGraph, name: str) -> TreeNode:
    """What `name` reads, transitively (the tree of its sources)."""
    return _tree(graph, name, graph.predecessors, lambda parent, child: (child, parent))


def downstream(graph: nx.DiGraph, name: str) -> TreeNode:
    """What reads `name`, transitively (where its changes cascade to)."""
    return _tree(graph, name, graph.successors, lambda parent, child: (parent, child))


def _tree(graph: nx.DiGraph, root: str, neighbours, edge_of) -> TreeNode:
    def node(name: str, lineage: str | None, seen: frozenset[str]) -> TreeNode:
        kind = graph.nodes[name].get("kind", "table") if name in graph else "tview"
        tree = TreeNode(name, kind, lineage)
        if name in graph and name not in seen:
            for other in sorted(neighbours(name)):
                tree.children.append(node(other, graph.edges[edge_of(name, other)]["lineage"], seen | {name}))
        return tree

    return node(root, None, frozenset())


@dataclass
class Layer:
    """The nodes of one topological level: 0 holds what reads nothing (base tables)."""

    level: int
    nodes: list[str]


def layers(graph: nx.DiGraph) -> list[Layer]:
    """Nodes by topological level (networkx generations), each level sorted by name."""
    return [Layer(level, sorted(nodes)) for level, nodes in enumerate(nx.topological_generations(graph))]


def inputs(graph: nx.DiGraph, name: str) -> list[tuple[str, str]]:
    """(source, lineage) of every edge into a node, sorted by source."""
    return sorted((source, graph.edges[source, name]["lineage"]) for source in graph.predecessors(name))


def short(name: str) -> str:
    """public.tb_user -> tb_user (events name written tables without their schema)."""
    return name.rpartition(".")[2]

"""Group adjacent executed cells tagged ``keras`` / ``pytorch`` into synced sphinx-design tabs.

Why our own extension: MyST-NB does not execute a ``code-cell`` nested inside a ``tab-item`` directive (MyST-NB#723),
so executed code must stay at the top level of the page. This transform runs after MyST-NB has rendered the cells
(inputs *and* outputs) and moves each run of adjacent tagged cells into a sphinx-design tab set. All sets share the
sync group ``framework``, so sphinx-design's own script switches every set on the page together and remembers the
reader's choice (``localStorage``) for every other page. A run with cells of one framework only (a Keras-only or
PyTorch-only step) gets no tab set, which would be a control that does nothing: it becomes a block with a small
framework label instead.

In a page::

    ```{code-cell} ipython3
    :tags: [keras]
    keras.ops.softmax(z)
    ```

    ```{code-cell} ipython3
    :tags: [pytorch]
    torch.softmax(z, dim=-1)
    ```
"""
from __future__ import annotations

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx_design.shared import create_component

SYNC_GROUP = "framework"
# tag -> tab label, in the order tabs appear when a page tags both.
FRAMEWORKS = {"keras": "Keras", "pytorch": "PyTorch"}


def framework_of(node: nodes.Node) -> str | None:
    """The framework tag of an executed MyST-NB code cell, or None for any other node."""
    if not isinstance(node, nodes.container) or node.get("nb_element") != "cell_code":
        return None
    tags = node.get("cell_metadata", {}).get("tags", [])
    found = [tag for tag in tags if tag in FRAMEWORKS]
    return found[0] if found else None


def make_tab_set(cells: list[tuple[str, nodes.container]]) -> nodes.container:
    """A sphinx-design tab set with one synced tab per framework; cells of one framework share a tab."""
    tab_set = create_component("tab-set", classes=["sd-tab-set", "framework-tabs"])
    by_framework: dict[str, list[nodes.container]] = {}
    for framework, cell in cells:
        by_framework.setdefault(framework, []).append(cell)
    for framework in sorted(by_framework, key=list(FRAMEWORKS).index):
        label = nodes.rubric(FRAMEWORKS[framework], FRAMEWORKS[framework], classes=["sd-tab-label"])
        label["sync_id"] = framework
        label["sync_group"] = SYNC_GROUP
        content = create_component("tab-content", classes=["sd-tab-content"], children=by_framework[framework])
        item = create_component("tab-item", classes=["sd-tab-item"], selected=False, children=[label, content])
        tab_set += item
    tab_set.source, tab_set.line = cells[0][1].source, cells[0][1].line
    return tab_set


def make_labelled_block(framework: str, cells: list[nodes.container]) -> nodes.container:
    """The cells of a one-framework run, under a small label that names the framework (no tab control)."""
    label = nodes.paragraph(FRAMEWORKS[framework], FRAMEWORKS[framework], classes=["framework-label"])
    block = nodes.container("", label, *cells, classes=["framework-single", f"framework-{framework}"])
    block.source, block.line = cells[0].source, cells[0].line
    return block


def group(cells: list[tuple[str, nodes.container]]) -> nodes.container:
    """A tab set when the run has both frameworks, a labelled block when it has one."""
    frameworks = {framework for framework, _ in cells}
    if len(frameworks) == 1:
        return make_labelled_block(cells[0][0], [cell for _, cell in cells])
    return make_tab_set(cells)


class FrameworkTabs(SphinxTransform):
    """Replace every run of adjacent framework-tagged cells by one tab set (or one labelled block)."""

    # After MyST-NB's parse (the cells exist), before sphinx-design's HTML post-transform builds the radio inputs.
    default_priority = 500

    def apply(self, **kwargs) -> None:
        parents = {id(cell.parent): cell.parent for cell in self.document.findall(nodes.container)
                   if framework_of(cell) and cell.parent is not None}
        for parent in parents.values():
            self._group_children(parent)

    @staticmethod
    def _group_children(parent: nodes.Element) -> None:
        grouped: list[nodes.Node] = []
        run: list[tuple[str, nodes.container]] = []
        for child in list(parent.children):
            framework = framework_of(child)
            if framework:
                run.append((framework, child))
                continue
            if run:
                grouped.append(group(run))
                run = []
            grouped.append(child)
        if run:
            grouped.append(group(run))
        parent.children = []
        parent.extend(grouped)


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx_design")
    app.add_transform(FrameworkTabs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

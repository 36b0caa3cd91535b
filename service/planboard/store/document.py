"""The shape of a stored MongoDB document as the code sees it."""

Document = dict[str, object]

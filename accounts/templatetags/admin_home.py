"""``{% attention_panel %}``: the admin home's "what needs me now" panel (accounts.selectors)."""

from __future__ import annotations

from django import template

from accounts.selectors import attention_items

register = template.Library()


@register.inclusion_tag("admin/attention_panel.html", takes_context=True)
def attention_panel(context: template.Context) -> dict:
    return {"items": attention_items(user=context["request"].user)}

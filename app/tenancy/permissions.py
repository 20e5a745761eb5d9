from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from app.tenancy.authentication import AuthContext


class SecretKeyRequired(BasePermission):
    """Authentication already refused a publishable key where a secret one is needed."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.auth, AuthContext)


class StaffOnly(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and getattr(user, "is_staff", False) and user.is_active)

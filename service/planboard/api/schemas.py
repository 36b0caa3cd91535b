"""Request and response schemas (marshmallow): they validate and they document.

Strings are stripped and bounded; unknown fields are rejected (``RAISE``).
"""

from __future__ import annotations

from typing import Any

import marshmallow as m
from marshmallow import fields, validate

from planboard.domain.access import PAT_MAX_DAYS, SCOPES, Role
from planboard.domain.text import control_problem

EMAIL = fields.Email(required=True, validate=validate.Length(max=254))


class Strict(m.Schema):
    class Meta:
        unknown = m.RAISE


class Trimmed(fields.String):
    """A string with surrounding whitespace removed and no control characters (the one-line
    rule of domain/text.py, which plan imports apply too)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = str(super()._deserialize(value, attr, data, **kwargs)).strip()
        problem = control_problem(text)
        if problem is not None:
            raise m.ValidationError(problem)
        return text


def name_field(max_length: int = 100, **kwargs: Any) -> fields.Field:
    return Trimmed(validate=validate.Length(min=1, max=max_length), **kwargs)


# --- auth -------------------------------------------------------------------------------


class RegisterBody(Strict):
    email = EMAIL
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    name = name_field(required=True)


class LoginBody(Strict):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class RefreshBody(Strict):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=300))


class LogoutBody(Strict):
    refresh_token = fields.String(validate=validate.Length(min=1, max=300))


class ForgotPasswordBody(Strict):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))


class ResetPasswordBody(Strict):
    token = fields.String(required=True, validate=validate.Length(min=1, max=300))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenBody(Strict):
    token = fields.String(required=True, validate=validate.Length(min=1, max=300))


class TokenPairOut(m.Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})


class UserOut(m.Schema):
    id = fields.String(required=True)
    email = fields.String(required=True)
    name = fields.String(required=True)
    email_verified = fields.Boolean()
    created_at = fields.DateTime()


class MembershipOut(m.Schema):
    workspace_id = fields.String(required=True)
    name = fields.String()
    role = fields.String(validate=validate.OneOf([r.value for r in Role]))


class MeOut(UserOut):
    workspaces = fields.List(fields.Nested(MembershipOut))


class AcceptedOut(m.Schema):
    status = fields.String(metadata={"example": "accepted"})


# --- personal access tokens -------------------------------------------------------------


class CreatePatBody(Strict):
    name = name_field(required=True)
    scopes = fields.List(
        fields.String(validate=validate.OneOf(sorted(SCOPES))),
        required=True,
        validate=validate.Length(min=1, max=len(SCOPES)),
    )
    expires_in_days = fields.Integer(
        load_default=30, validate=validate.Range(min=1, max=PAT_MAX_DAYS)
    )


class PatOut(m.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    scopes = fields.List(fields.String())
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked = fields.Boolean()


class CreatedPatOut(PatOut):
    token = fields.String(required=True, metadata={"description": "shown only once"})


class PatListOut(m.Schema):
    items = fields.List(fields.Nested(PatOut))


# --- workspaces -------------------------------------------------------------------------


class WorkspaceBody(Strict):
    name = name_field(required=True)


class WorkspaceOut(m.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    calendar = fields.Dict(
        allow_none=True, metadata={"description": "the working calendar; null: the default"}
    )
    role = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    version = fields.Integer()


class WorkspaceListOut(m.Schema):
    items = fields.List(fields.Nested(WorkspaceOut))
    next_cursor = fields.String(allow_none=True)


class MemberOut(m.Schema):
    user_id = fields.String(required=True)
    name = fields.String()
    email = fields.String()
    role = fields.String()
    joined_at = fields.DateTime()


class MemberListOut(m.Schema):
    items = fields.List(fields.Nested(MemberOut))


class RoleBody(Strict):
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))


class InvitationBody(Strict):
    email = EMAIL
    role = fields.String(
        load_default=Role.MEMBER.value, validate=validate.OneOf([r.value for r in Role])
    )


class InvitationOut(m.Schema):
    id = fields.String(required=True)
    workspace_id = fields.String()
    email = fields.String()
    role = fields.String()
    status = fields.String()
    invited_by = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()


class InvitationListOut(m.Schema):
    items = fields.List(fields.Nested(InvitationOut))


class AcceptedInvitationOut(m.Schema):
    workspace_id = fields.String()
    role = fields.String()


class PageQuery(Strict):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Length(max=500))

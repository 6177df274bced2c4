package oidc

import (
	"strings"

	"github.com/postern/postern/auth"
)

// DefaultGroupsClaim is the claim groups are read from unless configured.
const DefaultGroupsClaim = "groups"

// IdentityFromClaims builds the identity a set of verified claims describes:
// User is preferred_username, falling back to sub; Email is set only when
// email_verified is not false (absent counts as verified, as many providers
// omit it); Groups come from groupsClaim, a string or an array of strings.
func IdentityFromClaims(claims map[string]any, groupsClaim string) auth.Identity {
	if groupsClaim == "" {
		groupsClaim = DefaultGroupsClaim
	}
	sub, _ := claims["sub"].(string)
	id := auth.Identity{Subject: sub, User: sub}
	if name, _ := claims["preferred_username"].(string); name != "" {
		id.User = name
	}
	if email, _ := claims["email"].(string); email != "" && !isFalse(claims["email_verified"]) {
		id.Email = email
	}
	id.Groups = stringList(claims[groupsClaim])
	return id
}

// isFalse reports whether v says "false"; some providers send the string.
func isFalse(v any) bool {
	switch v := v.(type) {
	case bool:
		return !v
	case string:
		return strings.EqualFold(v, "false")
	}
	return false
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, g := range v {
			if s, ok := g.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []string:
		return v
	}
	return nil
}

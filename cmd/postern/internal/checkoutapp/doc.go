// Package checkoutapp is the small shop that "postern demo" puts behind the
// gateway: an order form, an upload form and a JSON API, whose answers show
// exactly what arrived (fields, files, identity headers, whether it was a
// replay) and how many orders the app has received in total, so a person can
// see a submission made before login arrive once.
//
// It is a demonstration upstream, not part of the gateway: it trusts the
// identity headers because only the gateway can reach it.
package checkoutapp

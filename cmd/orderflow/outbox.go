package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/engine/store"
)

// outboxUsage is the usage of the outbox subcommands.
const outboxUsage = `usage: orderflow outbox dead [flags]
       orderflow outbox requeue (--all | ID/VERSION...) [flags]`

// splitOutboxArgs splits the arguments after "outbox": the subcommand, its
// own arguments (the leading ones that are not flags, and --all), and the
// flags that follow.
func splitOutboxArgs(args []string) (sub string, own, flags []string, err error) {
	if len(args) == 0 {
		return "", nil, nil, errors.New(outboxUsage)
	}
	sub, args = args[0], args[1:]
	i := 0
	for ; i < len(args); i++ {
		if a := args[i]; strings.HasPrefix(a, "-") && a != "--all" && a != "-all" {
			break
		}
	}
	return sub, args[:i], args[i:], nil
}

// parseRequeue reads requeue's own arguments.
func parseRequeue(own []string) (all bool, refs []store.DeadRef, err error) {
	for _, a := range own {
		if a == "--all" || a == "-all" {
			all = true
			continue
		}
		i := strings.LastIndexByte(a, '/')
		id, v, ok := a[:max(i, 0)], a[i+1:], i >= 0
		n, verr := strconv.ParseInt(v, 10, 32)
		if !ok || id == "" || verr != nil || n < 1 {
			return false, nil, fmt.Errorf("requeue: %q is not ID/VERSION\n%s", a, outboxUsage)
		}
		refs = append(refs, store.DeadRef{OrderID: id, Version: int32(n)})
	}
	if all == (len(refs) > 0) {
		return false, nil, fmt.Errorf("requeue: give either --all or ID/VERSION...\n%s", outboxUsage)
	}
	return all, refs, nil
}

// outboxCommand runs `orderflow outbox dead` (list the parked events) or
// `orderflow outbox requeue` (put parked events back in the outbox: an
// ID/VERSION requeues that version and the order's later parked ones) on
// the database cfg names, writing to out.
func outboxCommand(ctx context.Context, cfg engine.Config, sub string, own []string, out io.Writer) error {
	var (
		all  bool
		refs []store.DeadRef
		err  error
	)
	switch sub {
	case "dead":
		if len(own) > 0 {
			return fmt.Errorf("dead: unexpected argument %q\n%s", own[0], outboxUsage)
		}
	case "requeue":
		if all, refs, err = parseRequeue(own); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown outbox subcommand %q\n%s", sub, outboxUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := store.New(ctx, store.Config{URL: cfg.DatabaseURL}, nil, cfg.Logger)
	if err != nil {
		return err
	}
	defer st.Close()
	if sub == "requeue" {
		n, err := st.RequeueDead(ctx, all, refs)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "requeued %d events\n", n)
		return nil
	}
	evs, err := st.DeadEvents(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ORDER/VERSION\tTYPE\tBYTES\tATTEMPTS\tPARKED AT\tERROR")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s/%d\t%s\t%d\t%d\t%s\t%s\n", e.OrderID, e.Version, e.Type, e.Bytes, e.Attempts,
			e.ParkedAt.UTC().Format(time.RFC3339), e.Err)
	}
	return tw.Flush()
}

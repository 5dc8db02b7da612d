package cluster

import (
	"context"

	"github.com/julienschmidt/httprouter"
)

// startLeaderLoops starts the leader-only loops under ctx.
func (r *Replica) startLeaderLoops(ctx context.Context, ls *leaderState) {}

// routeLeaderViews adds the endpoints answered from the leader's memory.
func (r *Replica) routeLeaderViews(rt *httprouter.Router) {}

// kickPlacement wakes the placement loop after a change that may let it place.
func (r *Replica) kickPlacement() {}

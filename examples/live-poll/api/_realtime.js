// The poll's realtime hooks (docs/js-handlers.md, "Realtime hooks"): they run
// only for the channels whose rule in app.json lists "occupancy" ("poll").
//
// They track which polls are being watched. onOccupied runs, on one node of
// the cluster, when a poll's channel gets its first viewer anywhere; onVacated
// when its last viewer left and nobody came back within
// realtime.hooks.vacatedDelaySeconds (a reload does not count as leaving).
// fazt has no storage for handlers yet, so the app log is where the record
// goes: one line per change, written by the node that saw it.
exports.onOccupied = ({ channel }) => {
  console.log(`poll "${channel}" is being watched`);
};

exports.onVacated = ({ channel }) => {
  console.log(`poll "${channel}" is not watched any more`);
};

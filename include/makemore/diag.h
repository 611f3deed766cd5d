// Training diagnostics, all of them: statistics (stats.h), the observer and its snapshots
// (snapshot.h), the doctor (doctor.h), and their JSON, text and run-folder files (diag_io.h).
// Include the one you need; this header is for code that uses them all.
#pragma once
#include "makemore/diag_io.h"
#include "makemore/doctor.h"
#include "makemore/snapshot.h"
#include "makemore/stats.h"

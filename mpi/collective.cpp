// The private communicator, the agreement and the exchange (collective.hpp).
#include "collective.hpp"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace simdnorm_mpi {
namespace {

thread_local char g_last_error[kMessageBytes] = "";

simdnorm_status mpi_failure(const char* fn, const char* call, int code) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) std::snprintf(text, sizeof text, "error %d", code);
  return fail(SIMDNORM_UNSUPPORTED, "%s: %s failed: %s", fn, call, text);
}

// ---- The private communicator. A duplicate of the caller's, made once per communicator and cached on it as an
// attribute (freed with it), keeps our collectives apart from the caller's and carries MPI_ERRORS_RETURN, so that a
// failed collective returns a code instead of aborting. The attribute holds the Fortran handle, so that caching it
// allocates nothing: a rank that failed to allocate here would leave the others waiting in MPI_Comm_dup.

int free_private_comm(MPI_Comm /*comm*/, int /*keyval*/, void* value, void* /*extra*/) {
  MPI_Comm dup = MPI_Comm_f2c(static_cast<MPI_Fint>(reinterpret_cast<std::intptr_t>(value)));
  return MPI_Comm_free(&dup);
}

int private_keyval() {
  static const int keyval = [] {
    int k = MPI_KEYVAL_INVALID;
    if (MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, free_private_comm, &k, nullptr) != MPI_SUCCESS) {
      k = MPI_KEYVAL_INVALID;
    }
    return k;
  }();
  return keyval;
}

// The duplicate is made with errors on comm itself returned, for that while.
int make_private_comm(MPI_Comm comm, int keyval, MPI_Comm* out) {
  MPI_Errhandler previous;
  int rc = MPI_Comm_get_errhandler(comm, &previous);
  if (rc != MPI_SUCCESS) return rc;
  rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(comm, out);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS) {
    rc = MPI_Comm_set_attr(comm, keyval, reinterpret_cast<void*>(static_cast<std::intptr_t>(MPI_Comm_c2f(*out))));
  }
  MPI_Comm_set_errhandler(comm, previous);
  MPI_Errhandler_free(&previous);
  return rc;
}

// ---- The agreement: each field travels as (value, ~value), so that one MPI_MAX gives the largest value and the
// complement of the smallest; the last word is (size - rank) << 8 | status of a failing rank, so that the maximum
// names the lowest failing rank.

constexpr const char* kFieldNames[kFields] = {"the function", "c",   "spatial",  "layout",
                                              "flags",        "eps", "momentum", "the choice of NULL"};

void describe(int field, std::uint64_t v, char* out, std::size_t size) {
  const std::uint32_t bits = static_cast<std::uint32_t>(v);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  if (field == kFunction) {
    std::snprintf(out, size, "%s", v == kForward ? "simdnorm_mpi_forward_training" : "simdnorm_mpi_backward");
  } else if (field == kLayout) {
    std::snprintf(out, size, "%s", v == SIMDNORM_NCHW ? "SIMDNORM_NCHW" : "SIMDNORM_NHWC");
  } else if (field == kFlags) {
    std::snprintf(out, size, "0x%x", static_cast<unsigned>(v));
  } else if (field == kEps || field == kMomentum) {
    std::snprintf(out, size, "%.9g [0x%08x]", double(f), static_cast<unsigned>(bits));
  } else if (field == kNulls) {
    std::snprintf(out, size, "gamma %s, beta %s, running statistics %s", (v & kGammaGiven) ? "given" : "NULL",
                  (v & kBetaGiven) ? "given" : "NULL", (v & kRunningGiven) ? "given" : "NULL");
  } else {
    std::snprintf(out, size, "%llu", static_cast<unsigned long long>(v));
  }
}

// The first field that differs: rank 0's value, then the lowest rank whose value differs, and its value.
simdnorm_status report_difference(const Call& call, const Local& local, int field) {
  std::uint64_t first = local.fields[field], other = local.fields[field];
  int rc = MPI_Bcast(&first, 1, MPI_UINT64_T, 0, call.comm);
  if (rc != MPI_SUCCESS) return mpi_failure(call.fn, "MPI_Bcast", rc);
  int mine = local.fields[field] != first ? call.rank : call.size, lowest = 0;
  rc = MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, call.comm);
  if (rc != MPI_SUCCESS) return mpi_failure(call.fn, "MPI_Allreduce", rc);
  rc = MPI_Bcast(&other, 1, MPI_UINT64_T, lowest, call.comm);
  if (rc != MPI_SUCCESS) return mpi_failure(call.fn, "MPI_Bcast", rc);
  char a[96], b[96];
  describe(field, first, a, sizeof a);
  describe(field, other, b, sizeof b);
  return fail(SIMDNORM_INVALID_ARGUMENT, "%s: %s differs between ranks: %s on rank 0, %s on rank %d", call.fn,
              kFieldNames[field], a, b, lowest);
}

// The lowest failing rank tells everybody why.
simdnorm_status report_failure(const Call& call, const Local& local, std::uint64_t word) {
  const int root = call.size - static_cast<int>(word >> 8);
  char reason[sizeof local.reason];
  std::memcpy(reason, local.reason, sizeof reason);
  const int rc = MPI_Bcast(reason, static_cast<int>(sizeof reason), MPI_CHAR, root, call.comm);
  if (rc != MPI_SUCCESS) return mpi_failure(call.fn, "MPI_Bcast", rc);
  reason[sizeof reason - 1] = '\0';
  return fail(static_cast<simdnorm_status>(word & 0xff), "%s: rank %d of %d: %s", call.fn, root, call.size, reason);
}

}  // namespace

simdnorm_status fail(simdnorm_status status, const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(g_last_error, sizeof g_last_error, format, args);
  va_end(args);
  return status;
}

simdnorm_status core_failure(const char* fn, simdnorm_status status) {
  return fail(status, "%s: %s", fn, simdnorm_last_error());
}

simdnorm_status open_call(const char* fn, MPI_Comm comm, Call* call) {
  int initialized = 0, finalized = 0, inter = 0, found = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: MPI is not initialised", fn);
  if (comm == MPI_COMM_NULL) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: comm is MPI_COMM_NULL", fn);
  int rc = MPI_Comm_test_inter(comm, &inter);
  if (rc != MPI_SUCCESS) return mpi_failure(fn, "MPI_Comm_test_inter", rc);
  if (inter) return fail(SIMDNORM_INVALID_ARGUMENT, "%s: comm is an intercommunicator", fn);
  const int keyval = private_keyval();
  if (keyval == MPI_KEYVAL_INVALID) return fail(SIMDNORM_UNSUPPORTED, "%s: MPI_Comm_create_keyval failed", fn);
  void* value = nullptr;
  rc = MPI_Comm_get_attr(comm, keyval, &value, &found);
  if (rc != MPI_SUCCESS) return mpi_failure(fn, "MPI_Comm_get_attr", rc);
  if (found) {
    call->comm = MPI_Comm_f2c(static_cast<MPI_Fint>(reinterpret_cast<std::intptr_t>(value)));
  } else if ((rc = make_private_comm(comm, keyval, &call->comm)) != MPI_SUCCESS) {
    return mpi_failure(fn, "MPI_Comm_dup", rc);
  }
  call->fn = fn;
  MPI_Comm_rank(call->comm, &call->rank);
  MPI_Comm_size(call->comm, &call->size);
  return SIMDNORM_SUCCESS;
}

simdnorm_status agree(const Call& call, const Local& local) {
  constexpr int kWords = 2 * kFields + 1;
  std::uint64_t mine[kWords], all[kWords];
  for (int f = 0; f < kFields; ++f) {
    mine[2 * f] = local.fields[f];
    mine[2 * f + 1] = ~local.fields[f];
  }
  const std::uint64_t status = static_cast<std::uint64_t>(local.status);
  mine[kWords - 1] = status != 0 ? (static_cast<std::uint64_t>(call.size - call.rank) << 8) | status : 0;
  const int rc = MPI_Allreduce(mine, all, kWords, MPI_UINT64_T, MPI_MAX, call.comm);
  if (rc != MPI_SUCCESS) return mpi_failure(call.fn, "MPI_Allreduce", rc);
  if (all[kWords - 1] != 0) return report_failure(call, local, all[kWords - 1]);
  for (int f = 0; f < kFields; ++f) {
    if (all[2 * f] != ~all[2 * f + 1]) return report_difference(call, local, f);
  }
  return SIMDNORM_SUCCESS;
}

simdnorm_status exchange(const Call& call, const double* record, std::size_t c, double* table, double* total) {
  const int size = static_cast<int>(2 + 2 * c);  // c was checked to fit
  const int rc = MPI_Allgather(record, size, MPI_DOUBLE, table, size, MPI_DOUBLE, call.comm);
  if (rc != MPI_SUCCESS) return mpi_failure(call.fn, "MPI_Allgather", rc);
  *total = 0.0;
  for (int p = 0; p < call.size; ++p) {
    const double* other = table + static_cast<std::size_t>(p) * static_cast<std::size_t>(size);
    if (other[1] != 0.0) {
      const int status = static_cast<int>(other[1]);
      return fail(static_cast<simdnorm_status>(status), "%s: rank %d of %d: its local step failed (status %d)%s%s",
                  call.fn, p, call.size, status, p == call.rank ? ": " : "",
                  p == call.rank ? simdnorm_last_error() : "");
    }
    *total += other[0];
  }
  if (*total < 2.0) {
    return fail(SIMDNORM_INVALID_ARGUMENT,
                "%s: need more than one value per channel when training (n*spatial summed over the ranks = %.0f)",
                call.fn, *total);
  }
  return SIMDNORM_SUCCESS;
}

}  // namespace simdnorm_mpi

extern "C" const char* simdnorm_mpi_last_error(void) { return simdnorm_mpi::g_last_error; }

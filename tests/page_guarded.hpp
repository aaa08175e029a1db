// Buffers flush against an inaccessible page, so that any access one element past either end faults (SIGSEGV) in any
// build, sanitised or not. Used by the batch norm guard-page tests and the LayerNorm/RMSNorm/GroupNorm ones.
#ifndef SIMDNORM_TESTS_PAGE_GUARDED_HPP_
#define SIMDNORM_TESTS_PAGE_GUARDED_HPP_

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <new>

#include "checkers.hpp"

namespace simdnorm_test {

// Which end of the buffer touches the PROT_NONE page (the other has one too, a page away).
enum class GuardEdge { kEnd, kStart };

// `count` values of T flush against a PROT_NONE page at the chosen edge.
template <class T>
class PageGuarded {
 public:
  PageGuarded(std::size_t count, GuardEdge edge) : count_(count) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t bytes = count * sizeof(T);
    const std::size_t data_pages = (bytes + page - 1) / page;
    length_ = (data_pages + 2) * page;
    void* map = mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<unsigned char*>(map);
    unsigned char* first_guard = base_;
    unsigned char* last_guard = base_ + (data_pages + 1) * page;
    mprotect(first_guard, page, PROT_NONE);
    mprotect(last_guard, page, PROT_NONE);
    data_ = reinterpret_cast<T*>(edge == GuardEdge::kEnd ? last_guard - bytes : first_guard + page);
  }
  ~PageGuarded() { munmap(base_, length_); }
  PageGuarded(const PageGuarded&) = delete;
  PageGuarded& operator=(const PageGuarded&) = delete;

  T* data() { return data_; }
  std::size_t size() const { return count_; }
  void fill(Rng& rng, double lo, double hi) {
    for (std::size_t i = 0; i < count_; ++i) data_[i] = static_cast<T>(rng.uniform(lo, hi));
  }

 private:
  std::size_t count_;
  std::size_t length_ = 0;
  unsigned char* base_ = nullptr;
  T* data_ = nullptr;
};

}  // namespace simdnorm_test

#endif  // SIMDNORM_TESTS_PAGE_GUARDED_HPP_

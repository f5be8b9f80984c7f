defmodule H2Flow.Demo.Counters do
  @moduledoc false
  # The demo's counters, in :atomics shared by its servers' handlers.

  @names [
    :in_flight,
    :peak_in_flight,
    :slow_started,
    :slow_completed,
    :echo_completed,
    :echo_last_bytes,
    :echo_largest_read,
    :reports
  ]
  @index @names |> Enum.with_index(1) |> Map.new()

  def new, do: :atomics.new(length(@names), signed: true)

  def all(ref), do: Map.new(@names, fn name -> {name, :atomics.get(ref, @index[name])} end)

  def get(ref, name), do: :atomics.get(ref, @index[name])
  def put(ref, name, value), do: :atomics.put(ref, @index[name], value)
  def add(ref, name, n), do: :atomics.add_get(ref, @index[name], n)

  @doc "Raises a counter to `value` if it is larger (a peak)."
  def raise_max(ref, name, value), do: raise_max_at(ref, @index[name], value)

  defp raise_max_at(ref, index, value) do
    current = :atomics.get(ref, index)

    if value > current and :atomics.compare_exchange(ref, index, current, value) != :ok do
      raise_max_at(ref, index, value)
    end

    :ok
  end

  @doc "Zeroes the counters of an experiment; the peak becomes what is in flight now."
  def reset(ref) do
    for name <- @names, name not in [:in_flight, :peak_in_flight, :reports], do: put(ref, name, 0)
    put(ref, :peak_in_flight, get(ref, :in_flight))
  end
end

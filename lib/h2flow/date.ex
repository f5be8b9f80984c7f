defmodule H2Flow.Date do
  @moduledoc false
  # The value of the `date` response header (RFC 9110 6.6.1), cached in the calling process and
  # refreshed by its one-second tick, so responses do not format a date each.

  @key {__MODULE__, :date}

  def current do
    case Process.get(@key) do
      nil -> refresh()
      date -> date
    end
  end

  def refresh do
    date = format(:calendar.universal_time())
    Process.put(@key, date)
    date
  end

  @days {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
  @months {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

  # IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
  def format({{y, mo, d} = date, {h, mi, s}}) do
    day = elem(@days, :calendar.day_of_the_week(date) - 1)
    month = elem(@months, mo - 1)
    "#{day}, #{pad(d)} #{month} #{y} #{pad(h)}:#{pad(mi)}:#{pad(s)} GMT"
  end

  defp pad(n) when n < 10, do: <<?0, ?0 + n>>
  defp pad(n), do: Integer.to_string(n)
end
